"""What a deployment's page says about the work on it, computed once for the
page and for its live stream (live.py), so that both say the same.

- progress: how many instances are ready of how many the plan makes, and since
  when the request being carried out runs (the page counts the seconds on);
- blocked: why the page offers no change now (a destroy is queued or running:
  a scale or an update asked now would only wait for it and then fail);
- destroyed: the deployment is gone, and the page must not look like one being made.
"""

from __future__ import annotations

from typing import Any

#: instance states in which an instance does what it is for: software once
#: configured or started, a machine once made (what it hosts is counted apart)
READY = ("configured", "started")


def ready(instance: dict[str, Any]) -> bool:
    state = instance.get("state")
    return state in READY or (state == "created" and instance.get("kind") == "compute")


def progress(st: dict[str, Any], topology: dict[str, Any] | None) -> dict[str, Any]:
    """{ready, total, since, doing}: `total` is what the plan makes (the topology's
    counts; before a worker recorded the deployment, its queued creation's plan),
    else the instances known so far; `since` is when the running request started
    (None when nothing runs)."""
    planned = sum(int(n.get("instances") or 0) for n in (topology or {}).get("nodes", []))
    total = max(planned, int(st.get("planned") or 0), len(st["instances"]))
    done = sum(1 for i in st["instances"] if ready(i))
    running = [w for w in st.get("work", []) if w["status"] == "running"]
    return {"ready": done, "total": total, "since": running[0].get("started_at") if running else None,
            "doing": running[0]["operation"] if running else None}


def blocked(st: dict[str, Any]) -> str | None:
    """Why changes are not offered now, in the user's words, or None."""
    destroying = [w for w in st.get("work", []) if w["operation"] == "destroy"]
    if destroying:
        w = destroying[0]
        when = ("is running" if w["status"] == "running"
                else f"is queued (it waits for {w.get('waits_for', 'a worker')})")
        return f"A destroy of this deployment {when}: nothing else can be asked of it until it is done."
    if st["status"] in ("DELETE_IN_PROGRESS",):
        return "This deployment is being destroyed."
    return None


def destroyed(st: dict[str, Any]) -> bool:
    return st["status"] == "DELETE_COMPLETE"


def node_labels(instances: list[dict[str, Any]]) -> dict[str, str]:
    """Per node, how many of its instances are ready, when not all are: "2 of 3 ready"."""
    by: dict[str, list[bool]] = {}
    for i in instances:
        by.setdefault(i["node"], []).append(ready(i))
    from dodas.server.web.graph import ready_label

    return {n: ready_label(sum(done), len(done)) for n, done in by.items() if len(done) > 1}


def ordered_outputs(outputs: dict[str, Any]) -> list[tuple[str, Any]]:
    """Outputs in the order a user wants them: the notebook's and Spark's pages
    first, then other addresses, then secrets (a token to log in with), then the rest."""
    def rank(item: tuple[int, tuple[str, Any]]) -> tuple[int, int]:
        n, (key, o) = item
        value = o.get("value") if isinstance(o, dict) else None
        known = not isinstance(o, dict) or o.get("known", True)
        url = (isinstance(value, str) and value.startswith(("http://", "https://"))) or (
            not known and key.lower().endswith(("url", "_ui")))  # an address not made yet keeps its place
        if url and any(w in key.lower() for w in ("jupyter", "spark", "notebook")):
            return 0, n
        if url:
            return 1, n
        return (2 if isinstance(o, dict) and o.get("sensitive") else 3), n
    return [kv for _, kv in sorted(enumerate(outputs.items()), key=rank)]


def pending_label(work: list[dict[str, Any]]) -> str:
    """The first unfinished request of a deployment as its badge says it: "destroy queued"."""
    if not work:
        return ""
    w = work[0]
    return f"{w['operation']} {'running' if w['status'] == 'running' else 'queued'}"


def row_actions(item: dict[str, Any]) -> list[dict[str, Any]]:
    """What a row of the list offers: Open, always; Destroy (the deployment's page,
    at its confirmation) unless it is destroyed, disabled with the reason when
    it would wait behind another destroy, when the creation has not started
    (its page offers no change yet), or when the caller may only read it. Each
    {label, href, reason}: `reason` None when it may be used."""
    name, status = item["name"], item.get("status")
    actions: list[dict[str, Any]] = [{"label": "Open", "href": f"/web/deployments/{name}", "reason": None}]
    if status == "DELETE_COMPLETE":
        return actions
    destroying = next((w for w in item.get("work", []) if w["operation"] == "destroy"), None)
    reason = None
    if not item.get("operate"):
        reason = "You may read it, not change it."
    elif status == "DELETE_IN_PROGRESS" or (destroying is not None and destroying["status"] == "running"):
        reason = "Being destroyed."
    elif destroying is not None:
        reason = "A destroy is queued already."
    elif status == "QUEUED":
        reason = "Its creation has not started yet."
    label = "Destroy again" if status == "DELETE_FAILED" else "Destroy"
    actions.append({"label": label, "href": f"/web/deployments/{name}?destroy=1", "reason": reason,
                    "danger": True})
    return actions
