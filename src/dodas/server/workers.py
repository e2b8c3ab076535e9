"""Workers: they lease queued work from the database and carry it out.

Each process also runs the autoscaler loops of elastic deployments that no
other process scales (`Autoscalers`, over services/autoscale.py).

A worker is a loop (in a thread of `dodas server`, or in a process of its own:
`python -m dodas.server.workers`, as the chart's worker pods run it) of: lease
the next item, heart-beat the lease from a second thread while
services/jobs.py does the work, record the outcome. Nothing about the work lives
in the worker's memory: if its process is killed, the lease expires and any
other worker takes the item over and the engine resumes the deployment.

On shutdown (SIGTERM) a worker takes no new item and finishes the one it holds
within the grace period it is given; what is still unfinished then is handed
back to the queue at once, so another worker need not wait for the lease to
expire.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading

from typing import Any

from dodas.services import jobs

log = logging.getLogger("dodas.server.workers")


class Worker:
    """One worker loop. `lease_seconds` is how long a lease lasts without a
    heartbeat (a dead worker's work waits that long); heartbeats come three
    times per lease, so one late heartbeat never loses it."""

    def __init__(self, name: str = "w0", lease_seconds: float = 30.0, poll_seconds: float = 0.5) -> None:
        self.owner = jobs.worker_owner(name)
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.current: Any = None  # the queue's Lease being worked on

    def run_forever(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # a database hiccup: log it, keep serving
                log.exception("worker %s: could not poll the queue", self.owner)
                worked = False
            if not worked:
                stop.wait(self.poll_seconds)

    def run_once(self) -> bool:
        """Lease and do one item; False when there was none."""
        held = jobs.lease(self.owner, self.lease_seconds)
        if held is None:
            return False
        self.current = held
        item = held.item
        log.info("worker %s: %s %s (item %d%s)", self.owner, item.operation, item.deployment_name, item.id,
                 f", taken over from {held.previous}" if held.previous else "")
        beating = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(item.id, beating), daemon=True,
                                name=f"heartbeat-{item.id}")
        beat.start()
        error: str | None = None
        try:
            jobs.run(held)
        except BaseException as exc:  # recorded on the item, the loop goes on
            error = jobs.describe_failure(exc) or type(exc).__name__
            if not isinstance(exc, Exception):
                raise
        finally:
            beating.set()
            beat.join()
            if not jobs.finish(item.id, self.owner, error):
                log.warning("worker %s: item %d was taken over meanwhile; its outcome is the new holder's",
                            self.owner, item.id)
            self.current = None
        return True

    def _heartbeat(self, item_id: int, done: threading.Event) -> None:
        while not done.wait(self.lease_seconds / 3):
            try:
                if not jobs.heartbeat(item_id, self.owner, self.lease_seconds):
                    log.warning("worker %s: lost the lease of item %d", self.owner, item_id)
                    return
            except Exception:  # try again at the next beat; the lease has slack for two
                log.exception("worker %s: heartbeat of item %d failed", self.owner, item_id)

    def hand_back(self) -> None:
        """Return the item still held (shutdown ran out of time) to the queue."""
        held = self.current
        if held is not None and jobs.release(held.item.id, self.owner):
            log.warning("worker %s: handed item %d back unfinished", self.owner, held.item.id)


class Autoscalers:
    """The autoscaler loops this process runs (services/autoscale.py): every few
    seconds it leases an elastic deployment nobody scales (a new one, or one whose
    holder died: its lease expired) and runs its loop in a thread of its own until
    the deployment goes, the lease is lost or the process stops. With several
    processes each deployment is scaled by exactly one of them."""

    def __init__(self, lease_seconds: float, max_loops: int = 50, look_seconds: float = 2.0) -> None:
        self.owner = jobs.worker_owner("autoscale")
        self.lease_seconds = lease_seconds
        self.max_loops = max_loops
        self.look_seconds = look_seconds
        self.loops: dict[str, threading.Thread] = {}

    def run_forever(self, stop: threading.Event) -> None:
        from dodas.services import autoscale

        while not stop.is_set():
            self.loops = {n: t for n, t in self.loops.items() if t.is_alive()}
            try:
                held = (autoscale.lease_next(self.owner, self.lease_seconds, exclude=frozenset(self.loops))
                        if len(self.loops) < self.max_loops else None)
            except Exception:  # a database hiccup: log it, look again later
                log.exception("autoscalers: could not look for elastic deployments")
                held = None
            if held is not None:
                t = threading.Thread(target=self._loop, args=(held.name, stop), daemon=True,
                                     name=f"dodas-autoscale-{held.name}")
                self.loops[held.name] = t
                t.start()
                continue
            stop.wait(self.look_seconds)
        for t in self.loops.values():
            t.join(timeout=self.lease_seconds)

    def _loop(self, name: str, stop: threading.Event) -> None:
        from dodas.errors import DodasError
        from dodas.services import autoscale

        log.info("autoscaling %s", name)
        try:  # a server's template is not trusted: dodas's playbooks only when it scales; its owner's quotas cap it
            autoscale.run(name, self.owner, stop=stop, trusted=False, lease_s=self.lease_seconds,
                          cap=autoscale.quota_cap)
        except DodasError as exc:
            log.info("autoscaler of %s stopped: %s", name, exc.message)
        except Exception:  # the loop ends; its lease expires and it is picked up again
            log.exception("autoscaler of %s failed", name)


class Pool:
    """Worker threads of one process, and its autoscaler loops, started and stopped together."""

    def __init__(self, count: int, lease_seconds: float, poll_seconds: float = 0.5, autoscale: bool = True) -> None:
        self.workers = [Worker(f"w{n}", lease_seconds, poll_seconds) for n in range(count)]
        self.autoscalers = Autoscalers(lease_seconds) if autoscale else None
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for w in self.workers:
            t = threading.Thread(target=w.run_forever, args=(self.stop,), name=f"dodas-{w.owner}", daemon=True)
            t.start()
            self.threads.append(t)
        if self.autoscalers is not None:
            t = threading.Thread(target=self.autoscalers.run_forever, args=(self.stop,), daemon=True,
                                 name=f"dodas-{self.autoscalers.owner}")
            t.start()
            self.threads.append(t)

    def shutdown(self, grace: float) -> None:
        """Take no new work; wait up to `grace` seconds, then hand back what is held
        (an autoscaler loop gives its lease back as it stops)."""
        self.stop.set()
        for t in self.threads:
            t.join(timeout=grace)
        for w in self.workers:
            w.hand_back()


def main(argv: list[str] | None = None) -> int:
    """Workers in a process of their own (no API), for a server whose API and
    workers scale apart. Reads the server's configuration for the worker count
    and lease length; SIGTERM and SIGINT stop it gracefully."""
    import argparse

    from dodas.errors import DodasError
    from dodas.server import config

    p = argparse.ArgumentParser(prog="python -m dodas.server.workers", description=__doc__.splitlines()[0])
    p.add_argument("--config", "-c", help="the server's configuration file (default: as dodas server)")
    p.add_argument("--workers", type=int, help="worker threads (default: the configuration's `workers`)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = config.load(args.config)
        count = args.workers if args.workers is not None else max(cfg.workers, 1)
        jobs.depth()  # opens (and migrates) the database before taking any work: a bad URL fails here
    except DodasError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    pool = Pool(count, cfg.lease_seconds)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    pool.start()
    log.info("%d worker(s) polling the queue", count)
    stopping.wait()
    pool.shutdown(grace=cfg.lease_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
