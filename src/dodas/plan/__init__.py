"""Planning: the instance graph, cycle detection, waves."""
