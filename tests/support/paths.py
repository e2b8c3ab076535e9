"""Where the repository and its bundled templates are, for every test and helper."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates"
#: the course's seed template (Spark on Kubernetes) and the local Spark + Jupyter one
SEED = TEMPLATES / "dodas-course-spark-k8s.yaml"
SPARK = TEMPLATES / "spark-jupyter.yaml"
