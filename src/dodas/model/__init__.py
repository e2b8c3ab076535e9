"""The deployment model: nodes, instances, deferred values, outputs."""
