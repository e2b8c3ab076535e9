"""Elastic clusters: workload readers, scaling policies and decisions (issue 15)."""
