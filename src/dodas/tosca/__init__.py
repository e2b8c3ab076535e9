"""TOSCA layer: load a template with tosca-parser, locate every problem, check inputs."""
