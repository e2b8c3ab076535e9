"""Workload readers, one module per workload system, each behind the one interface
of `dodas.elastic.workload.Reader`. They take plain parameters (URLs, a kubeconfig
and context, collector and schedd addresses), not dodas's model, so the loop
decides what to pass and the readers can be tested on their own."""

from __future__ import annotations

from typing import Any

from dodas.elastic.workload import Reader

WORKLOADS = ("spark", "kubernetes", "htcondor")


def reader_for(workload: str, **params: Any) -> Reader:
    """The reader of a workload system ("spark", "kubernetes" or "htcondor").

    spark: master_ui_url (http://HOST:PORT of the master's web UI), timeout, transport.
    kubernetes: kubeconfig (a file) or kubeconfig_text, context, api_client, ignore_namespaces.
    htcondor: collector, schedd, query, token (an IDTOKEN, written only to a private file), timeout.
    """
    if workload == "spark":
        from dodas.elastic.readers.spark import SparkReader
        return SparkReader(**params)
    if workload == "kubernetes":
        from dodas.elastic.readers.kubernetes import KubernetesReader
        return KubernetesReader(**params)
    if workload == "htcondor":
        from dodas.elastic.readers.htcondor import HTCondorReader
        return HTCondorReader(**params)
    raise ValueError(f"no reader for workload {workload!r} (one of: {', '.join(WORKLOADS)})")
