"""HTCondor: idle jobs and the pool's slots, through the `htcondor` bindings from PyPI
(the `elastic` extra; imported only when used).

The wheel of HTCondor 25 carries only the version-2 bindings, `htcondor2` and
`classad2`; they install with pip and build and evaluate ClassAds offline, so
the tests feed this reader ClassAds parsed from recorded `condor_q -long` /
`condor_status -long` text, and run it against a live pool on the local
provider (tests/test_htcondor_pool.py: reading, a waiting job named, a foreign
token refused, a graceful drain), whose startds share one machine name and are
told apart by address (`startds`).

Idle jobs (JobStatus 1) wait for their RequestCpus; unclaimed slots can take
them, so the cores that wait are the idle jobs' cores beyond the unclaimed
slots' cores. A worker is a startd machine (`Machine`), busy when one of its
slots is Claimed; it is drained gracefully (`Startd.drainJobs`: running jobs
finish, no new ones start) and done when no slot is claimed any more.

The daemons are asked in a child Python (`_CHILD`, about 70 ms): that is where
the pool's IDTOKEN is given to HTCondor. htcondor2 25 takes a token by value
only for the collector (`SecurityContext`); a Schedd or Startd found through it
authenticates with the tokens of `SEC_TOKEN_DIRECTORY`. So each operation writes
the token to a file (0600) of a private temporary directory (0700), points the
child's `_CONDOR_SEC_TOKEN_DIRECTORY` at that directory, and removes both when
the child is done: the token itself is never in an environment variable, a
command line or a message, and no process-wide setting of the bindings is
changed under another deployment's poll (a server runs several).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from typing import Any

from dodas.elastic.workload import WorkerLoad, Workload, plural
from dodas.errors import DodasError

JOB_IDLE = 1
JOB_PROJECTION = ["ClusterId", "ProcId", "JobStatus", "RequestCpus", "RequestMemory", "Owner", "Cmd"]
SLOT_PROJECTION = ["Name", "Machine", "State", "Activity", "Cpus", "TotalSlotCpus", "SlotType", "Draining",
                   "MyAddress"]
DRAIN_REASON = "dodas autoscaler: idle worker removed"
#: how long one question to the pool may take: a read asks twice (schedd, collector), within the
#: autoscaler's lease (30 s) even when the collector's address swallows packets
TIMEOUT_S = 12.0
TOKEN_FILE = "dodas-autoscaler"


class HTCondorError(DodasError):
    """The pool did not answer, or refused: the message names the collector."""


#: what the child Python runs: one request (JSON on stdin, no secret in it), the answer as JSON on stdout
_CHILD = r"""
import json, sys
req = json.load(sys.stdin)
step = "the collector"
try:
    import classad2
    import htcondor2 as htcondor
    coll = htcondor.Collector(req["collector"])
    ads = []
    if req["op"] == "slots":
        ads = coll.query(htcondor.AdType.Startd, projection=req["projection"])
    elif req["op"] == "jobs":
        location = (coll.locate(htcondor.DaemonType.Schedd, req["name"]) if req["name"]
                    else coll.locate(htcondor.DaemonType.Schedd))
        step = "the schedd " + str(location.get("Name", ""))
        ads = htcondor.Schedd(location).query(constraint=req["constraint"], projection=req["projection"])
    elif req["op"] == "drain":
        # the startd's own address, from its slots' ads: its name need not resolve where dodas runs
        name = classad2.quote(req["name"])
        found = coll.query(htcondor.AdType.Startd, constraint=f"Machine == {name} || Name == {name}",
                           projection=["MyAddress", "Name", "Machine"])
        if not found:
            raise LookupError("the collector knows no startd of that name")
        step = "the startd " + req["name"]
        htcondor.Startd(found[0]).drainJobs(htcondor.DrainType.Graceful, reason=req["reason"])
    print(json.dumps({"ads": [str(a) for a in ads]}))
except Exception as exc:
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}", "step": step}))
"""


def _spawn(argv: list[str], env: dict[str, str], request: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run the child (the tests wrap this to look at its command line and environment)."""
    return subprocess.run(argv, input=request, env=env, capture_output=True, text=True, timeout=timeout)


def _child_env(token_dir: str | None) -> dict[str, str]:
    """dodas's environment without HTCondor settings of its own, and the token directory when there is one."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("_CONDOR_SEC_TOKEN")}
    if token_dir is not None:
        env["_CONDOR_SEC_TOKEN_DIRECTORY"] = token_dir
        env["_CONDOR_SEC_CLIENT_AUTHENTICATION_METHODS"] = "IDTOKENS"
    return env


class _TokenDir:
    """A private directory (0700) holding the token in a file (0600), removed on exit."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.path: str | None = None

    def __enter__(self) -> str | None:
        if not self.token:
            return None
        self.path = tempfile.mkdtemp(prefix="dodas-htcondor-")   # 0700
        fd = os.open(os.path.join(self.path, TOKEN_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token + "\n")
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)
            self.path = None


def _value(ad: Any, key: str, default: Any = None) -> Any:
    """An attribute's value, evaluated when it is an expression (RequestCpus often is)."""
    if key not in ad:
        return default
    try:
        v = ad.eval(key) if hasattr(ad, "eval") else ad[key]
    except Exception:  # noqa: BLE001 - an expression that does not evaluate here (refers to a machine ad)
        return default
    return default if type(v).__name__ == "Value" else v  # classad2.Value: Undefined, Error


def _host(ads: list[Any], machine: str) -> str:
    """The startd's IP address, from MyAddress ("<10.0.0.21:9618?addrs=...>"): what dodas knows the
    instance by; the machine name when there is none."""
    for s in ads:
        m = re.match(r"<\[?([0-9a-fA-F.:]+?)\]?:\d+", str(_value(s, "MyAddress", "") or ""))
        if m:
            return m.group(1)
    return machine


def startds(slots: list[Any]) -> dict[str, list[Any]]:
    """Slot ads grouped by startd: by Machine, unless startds at several addresses share one
    machine name (the local provider's, all on this host), which are told apart by address."""
    by_machine: dict[str, list[Any]] = defaultdict(list)
    for s in slots:
        by_machine[str(_value(s, "Machine", ""))].append(s)
    out: dict[str, list[Any]] = {}
    for machine, ads in by_machine.items():
        if len({_host([s], machine) for s in ads}) <= 1:
            out[machine] = ads
        else:
            for s in ads:
                out.setdefault(_host([s], machine), []).append(s)
    return out


def workload_of(jobs: list[Any], slots: list[Any]) -> Workload:
    """The workload from a schedd's job ads and a collector's startd (slot) ads."""
    idle = [j for j in jobs if _value(j, "JobStatus") == JOB_IDLE]
    by_machine = startds(slots)
    free = 0
    workers = []
    for machine, ads in sorted(by_machine.items()):
        # a partitionable slot owns the machine's cores; its dynamic slots are carved from them
        parts = [s for s in ads if _value(s, "SlotType") == "Partitionable"]
        claimed = [s for s in ads if _value(s, "State") == "Claimed"]
        unclaimed = [s for s in ads if _value(s, "State") == "Unclaimed"]
        total = sum(int(_value(s, "Cpus", 0) or 0) for s in ads if _value(s, "SlotType") != "Dynamic")
        used = sum(int(_value(s, "Cpus", 0) or 0) for s in claimed)
        if parts:
            total = sum(int(_value(s, "TotalSlotCpus", 0) or _value(s, "Cpus", 0) or 0) for s in parts)
        draining = any(_value(s, "Draining", False) is True for s in ads)
        if not draining:
            free += sum(int(_value(s, "Cpus", 0) or 0) for s in unclaimed)
        state = "draining" if draining else ("Claimed" if claimed else "Unclaimed")
        workers.append(WorkerLoad(id=machine, host=_host(ads, machine), busy=bool(claimed), cores=total,
                                  cores_used=used, state=state))
    need = 0
    for j in idle:
        need += max(1, math.ceil(float(_value(j, "RequestCpus", 1) or 1)))
    waiting_cores = max(0, need - free)
    waiting: tuple[str, ...] = ()
    if waiting_cores:
        waiting = tuple(f"job {_value(j, 'ClusterId')}.{_value(j, 'ProcId')} of {_value(j, 'Owner', '?')} is idle "
                        f"and requests {plural(max(1, math.ceil(float(_value(j, 'RequestCpus', 1) or 1))), 'core')}"
                        for j in idle)
    return Workload(waiting_cores=waiting_cores, waiting=waiting, workers=tuple(workers))


class HTCondorReader:
    """Reads a pool: the collector's slots, one schedd's jobs (the pool's first schedd if none is named).

    `token`: an IDTOKEN of the pool (READ to query, ADMINISTRATOR to drain), given to
    HTCondor only through a private token directory while a child asks the daemons."""

    def __init__(self, collector: str | None = None, schedd: str | None = None, *, token: str | None = None,
                 timeout: float = TIMEOUT_S, query: Any = None, start_drain: Any = None) -> None:
        self.collector = collector
        self.schedd = schedd
        self.timeout = timeout
        self._token = token
        self._query = query   # tests: a callable ("jobs" | "slots") -> ClassAds, instead of the daemons
        self._start_drain = start_drain or self._drain_startd   # tests: a callable (startd name) -> None

    def __repr__(self) -> str:   # never the token
        return f"HTCondorReader(collector={self.collector!r}, schedd={self.schedd!r})"

    def _ask(self, request: dict[str, Any]) -> list[Any]:
        """One request to the pool, in a child Python; its ClassAds, or an HTCondorError naming the collector."""
        import classad2

        where = f"the HTCondor collector at {self.collector or '(COLLECTOR_HOST of the local configuration)'}"
        with _TokenDir(self._token) as token_dir:
            try:
                r = _spawn([sys.executable, "-c", _CHILD], _child_env(token_dir),
                           json.dumps({"collector": self.collector, **request}), self.timeout)
            except subprocess.TimeoutExpired:
                raise HTCondorError(f"{where} did not answer within {self.timeout:.0f} s") from None
        try:
            answer = json.loads(r.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            tail = (r.stderr or r.stdout or "").strip().splitlines()[-1:] or ["no output"]
            raise HTCondorError(f"asking {where} failed (exit {r.returncode}): {tail[0]}") from None
        if "error" in answer:
            if request["op"] == "drain":
                what = f"cannot drain the startd {request['name']} (through {where})"
            elif answer.get("step", "the collector") != "the collector":
                what = f"cannot query {answer['step']} (through {where})"
            else:
                what = f"cannot query {where}"
            raise HTCondorError(f"{what}: {answer['error']}")
        return [classad2.ClassAd(text) for text in answer["ads"]]

    def _drain_startd(self, name: str) -> None:
        self._ask({"op": "drain", "name": name, "reason": DRAIN_REASON})

    def _ads(self, what: str) -> list[Any]:
        if self._query is not None:
            return list(self._query(what))
        if what == "slots":
            return self._ask({"op": "slots", "projection": SLOT_PROJECTION})
        return self._ask({"op": "jobs", "name": self.schedd, "constraint": f"JobStatus == {JOB_IDLE}",
                          "projection": JOB_PROJECTION})

    def _read(self) -> Workload:
        return workload_of(self._ads("jobs"), self._ads("slots"))

    async def read(self) -> Workload:
        return await asyncio.to_thread(self._read)

    def _drain(self, machine: str) -> bool:
        slots = startds(self._ads("slots")).get(machine, [])
        if not slots:
            return True
        if not any(_value(s, "Draining", False) is True for s in slots):
            name = str(_value(slots[0], "Name", machine))
            # the startd's name is its slots' name after the "@" (slot1@wn-0 -> wn-0); startds
            # told apart by address are found by a slot's own name (its ad has the startd's address)
            self._start_drain(name.split("@")[-1] if machine == _value(slots[0], "Machine") else name)
        return not any(_value(s, "State") == "Claimed" for s in slots)

    async def drain(self, worker: WorkerLoad) -> bool:
        """Drain the startd gracefully (running jobs finish); True once no slot is claimed."""
        return await asyncio.to_thread(self._drain, worker.id)
