"""A deployment's page, live: Server-Sent Events of its states and its log.

The stream sends a `states` event (status, each instance's state, each node's
state for the picture, the attempts) whenever they change, and a `log` event
per new event of the deployment; the page's script applies them without a
reload. It polls the state database (twice a second), so that it sees what any
server process's workers do. It stays open while the page is.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from dodas.server import operations as ops
from dodas.server.web import graph, view
from dodas.server.web.login import signed_in

router = APIRouter(prefix="/web", include_in_schema=False)
POLL_S = 0.5
#: a comment line this often keeps proxies from closing a quiet stream
KEEPALIVE_S = 15.0


def frame(event: str, data: Any, ident: int | None = None) -> str:
    head = f"id: {ident}\n" if ident is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def snapshot(caller: Any, name: str) -> dict[str, Any]:
    st = ops.states(caller, name)
    topo = ops.topology(caller, name) if st["status"] != "QUEUED" else None
    return {"status": st["status"], "reason": st.get("reason"), "provider": st.get("provider"),
            "instances": st["instances"], "nodes": graph.node_states(st["instances"]),
            "labels": view.node_labels(st["instances"]), "shape": graph.shape(st["instances"]),
            "attempts": st["attempts"], "requests": st["requests"], "work": st["work"],
            "progress": view.progress(st, topo), "blocked": view.blocked(st), "busy": bool(st["work"])}


@router.get("/deployments/{name}/live")
async def live(name: str, request: Request, after: int = 0) -> StreamingResponse:
    _, caller = signed_in(request)
    ops.readable(caller, name)
    last_id = int(request.headers.get("last-event-id") or after or 0)

    async def stream():  # an async generator of SSE frames
        last, shown, quiet = last_id, None, 0.0
        yield "retry: 2000\n\n"
        while not await request.is_disconnected():
            # the log first: a page that sees the final state has the log that led to it
            snap = await asyncio.to_thread(snapshot, caller, name)
            for e in await asyncio.to_thread(ops.events, name, last):
                last = e["id"]
                yield frame("log", e, e["id"])
            if snap != shown:
                shown = snap
                yield frame("states", snap)
            quiet += POLL_S
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(POLL_S)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
