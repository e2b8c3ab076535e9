"""The engine: walks a plan, calls providers and the configuration runner, records state."""
