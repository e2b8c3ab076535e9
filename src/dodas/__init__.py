"""dodas: deploy analysis platforms (Spark + Jupyter, Kubernetes, HTCondor, caches)
from one TOSCA template, on this machine or on any cloud."""

__version__ = "0.1.0"
