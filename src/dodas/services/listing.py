"""The dashboard's list of deployments, a page of it: each row as the server's
listing has it (served.deployments: name, status, template, owner, created),
with what it holds now (costs.of_deployments: machines, cores, memory), the
requests not finished yet (a destroy queued behind the worker shows in the
row before the status changes) and whether the caller may operate it. A few
queries per page, whatever its length: the page's script asks for it again
every few seconds.
"""

from __future__ import annotations

from typing import Any

from dodas.services import costs, served, tenancy
from dodas.state import queue


def page(cfg: Any, caller: tenancy.Caller, status: str | None, limit: int, offset: int, *,
         destroyed: bool) -> dict[str, Any]:
    """served.deployments' answer, each item with `size` ({machines, cores, mem_mib},
    None before a worker made it or once destroyed), `work` ([{operation, status}],
    oldest first) and `operate` (True when the caller may change it)."""
    found = served.deployments(caller, status, limit, offset, destroyed=destroyed)
    names = [i["name"] for i in found["items"]]
    sizes = costs.of_deployments(names)
    work = pending(names)
    access = queue.visible_to(caller.key, caller.groups, caller.admin)
    for item in found["items"]:
        item["size"] = sizes.get(item["name"])
        item["work"] = work.get(item["name"], [])
        item["operate"] = tenancy.can_operate(caller, access.get(item["name"]), cfg)
    return found


def pending(names: list[str]) -> dict[str, list[dict[str, str]]]:
    """{name: [{operation, status}]}: the named deployments' queued and running
    requests, oldest first."""
    wanted = set(names)
    out: dict[str, list[dict[str, str]]] = {}
    active = queue.items(status="running", limit=1000) + queue.items(status="queued", limit=1000)
    for item in sorted(active, key=lambda i: i.id):
        if item.deployment_name in wanted:
            out.setdefault(item.deployment_name, []).append({"operation": item.operation, "status": item.status})
    return out
