"""`up`, `destroy` and `unlock`: the operations that change a deployment.

Each validates and plans first, checks what the provider can know in advance
(preflight), and only then takes the deployment lock and touches anything, so a
bad template or a missing tool never leaves a half-made deployment behind.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError

from dodas import paths
from dodas.configure.runner import AnsibleRunner
from dodas.engine.engine import DeploymentFailed, Engine, Reporter
from dodas.engine.recorder import Listener, Recorder
from dodas.engine.states import DeploymentStatus as DS
from dodas.environment import environment_problem
from dodas.errors import DodasError
from dodas.model.deployment import Instance
from dodas.plan.plan import Plan
from dodas.providers import get_provider
from dodas.providers.base import Provider
from dodas.services import planning
from dodas.services.planning import DeploymentPlan
from dodas.state import lock
from dodas.state.store import Store

@dataclass
class UpResult:
    name: str
    changed: bool
    status: str
    plan: Plan


def up(template: str, *, name: str | None, pairs: list[str] | None, inputs_file: Any,
       provider_name: str | None, parallelism: int, listener: Listener | None = None, offline: bool = False,
       max_providers: int = 3, keep_failed: bool = False, overcommit: bool = False,
       allow_external_playbooks: bool = False, strict: bool = False) -> UpResult:
    """Plan against the state and apply at once, without asking: for callers that
    decided already (tests, scripts through `up --yes`). Faces that show the plan
    and ask call `planning.prepare` and `apply` themselves."""
    if parallelism < 1:
        raise DodasError("--parallelism must be at least 1")
    dplan = planning.prepare(template, name=name, pairs=pairs, inputs_file=inputs_file,
                             provider_name=provider_name, offline=offline, max_providers=max_providers,
                             overcommit=overcommit, allow_external_playbooks=allow_external_playbooks,
                             strict=strict, refresh=False)
    return apply(dplan, parallelism=parallelism, listener=listener, keep_failed=keep_failed)


def apply(dplan: DeploymentPlan, *, parallelism: int, listener: Listener | None = None, keep_failed: bool = False,
          lock_timeout: float = 0.0) -> UpResult:
    """Carry out a plan made by `planning.prepare`: deploy, or reconcile an
    existing deployment. A new deployment is tried on each viable provider in rank
    order; a failed try is destroyed completely before the next, unless it is the
    last and `keep_failed` asks to keep it for debugging.

    The engine re-checks each instance as it goes (the plan said what it expects;
    the world may have moved since), so applying a stale plan is safe, only its
    summary may be off."""
    if parallelism < 1:
        raise DodasError("--parallelism must be at least 1")
    if not dplan.viable:
        raise DodasError(f'no provider can deploy "{dplan.name}": '
                         + "; ".join(f"{n}: {'; '.join(p)}" for n, p in dplan.skipped))
    store = Store()
    name, plan, viable = dplan.name, dplan.plan, dplan.viable
    dep = store.get(name)
    live = dplan.deployment is not None
    if live and (dep is None or dep.id != dplan.deployment.id):
        raise DodasError(f'deployment "{name}" changed since it was planned (it was destroyed or re-created): '
                         "plan again")
    fields = planning.template_fields(dplan)
    me = lock.me()
    creating = not live or dep.status in (DS.CREATE_FAILED.value, DS.CREATE_IN_PROGRESS.value)
    if dep is None:
        try:
            dep = store.create(name, viable[0][0].name, status=DS.CREATE_IN_PROGRESS.value, **fields)
        except IntegrityError:
            raise lock.LockedError(f'deployment "{name}" is being created by another dodas right now') from None
        with store.session() as s:
            lock.acquire(s, s.get(type(dep), dep.id), me)
    else:
        stale = _acquire(store, dep, me, lock_timeout)
        if stale:
            after_crash(store, dep.id, stale)
        store.update(dep.id, provider=viable[0][0].name, status=(DS.CREATE_IN_PROGRESS if creating
                                                                 else DS.UPDATE_IN_PROGRESS).value,
                     status_reason=None, **fields)
    status_ok = DS.CREATE_COMPLETE if creating else DS.UPDATE_COMPLETE
    status_fail = DS.CREATE_FAILED if creating else DS.UPDATE_FAILED
    try:
        with interruptible():
            _keep_template(dep.id, dplan.text)
            reporter: Reporter = Recorder(store, dep.id, listener)
            if not live:
                for pname, probs in dplan.skipped:
                    store.start_attempt(dep.id, pname, status="skipped", error="; ".join(probs))
            # a new deployment's attempts fail over; a create resumed (after a crash, a
            # failure, a take-over) is recorded as an attempt of its own, with its outcome
            changed = _attempts(store, dep.id, name, plan, viable, reporter, parallelism, keep_failed,
                                record=creating, failover=not live)
    except DeploymentFailed as exc:
        _record(store.set_status, dep.id, status_fail.value, str(exc))
        _record(store.event, dep.id, "deploy", str(exc), instance=exc.instance, level="error")
        raise
    except KeyboardInterrupt as exc:
        _record(store.set_status, dep.id, status_fail.value, _interruption(exc))
        raise
    except BaseException as exc:
        _record(store.set_status, dep.id, status_fail.value, environment_problem(exc) or f"{type(exc).__name__}: {exc}")
        raise
    finally:
        _record(_release, store, dep.id, me)
    store.set_status(dep.id, status_ok.value, None)
    store.event(dep.id, "deploy", "complete" if changed else "nothing to do: the deployment is as planned")
    _elastic(name, plan)
    return UpResult(name, changed, status_ok.value, plan)


def _elastic(name: str, plan: Plan) -> None:
    """A deployment applied with an elasticity policy gets an autoscaler (run by
    a server's workers or `dodas autoscale`); one applied without loses it."""
    from dodas.state import autoscalers

    if plan.model.elastic:
        autoscalers.register(name)
    else:
        autoscalers.forget(name)


def _acquire(store: Store, dep: Any, me: str, timeout: float) -> str | None:
    """Take the deployment's lock, waiting up to `timeout` seconds for its holder."""
    wait = getattr(lock, "acquire_waiting", None)
    with store.session() as s:
        row = s.get(type(dep), dep.id)
        if timeout > 0 and wait is not None:
            return wait(s, row, me, timeout)
        return lock.acquire(s, row, me)


def engine(store: Store, dep_id: str, name: str, plan: Plan | None, provider: Provider, reporter: Reporter,
           parallelism: int) -> Engine:
    """An engine for one run, handed the provider that makes the machines and the
    configurator that runs the operations: Ansible, in the deployment's private
    directory, its events going to the reporter."""
    def sink(inst: Instance | None, phase: str, message: str, level: str) -> None:
        reporter.event(inst.id if inst else None, phase, message, level)
    runner = AnsibleRunner(paths.data_dir() / "deployments" / paths.component(dep_id) / "ansible", sink,
                           forks=max(1, parallelism), run_mark=dep_id)
    return Engine(store, dep_id, name, plan, provider, runner, reporter, parallelism)


def _attempts(store: Store, dep_id: str, name: str, plan: Plan, viable: list, reporter: Reporter,
              parallelism: int, keep_failed: bool, record: bool, failover: bool) -> bool:
    errors: list[str] = []
    for n, (cfg, provider) in enumerate(viable):
        last = n == len(viable) - 1
        store.update(dep_id, provider=cfg.name)
        attempt = store.start_attempt(dep_id, cfg.name) if record else None
        ended = False

        def end(status: str, error: str | None = None) -> None:
            nonlocal ended
            if attempt is not None:
                store.end_attempt(attempt, status, error)
            ended = True
        try:
            changed = asyncio.run(engine(store, dep_id, name, plan, provider, reporter, parallelism).up())
        except DeploymentFailed as exc:
            errors.append(f"{cfg.name}: {exc}")
            if not failover:
                end("failed", str(exc))
                raise
            try:
                if last and keep_failed:
                    end("kept", str(exc))
                    raise
                reporter.event(None, "failover", f"attempt on {cfg.name} failed; removing everything it made")
                left = asyncio.run(engine(store, dep_id, name, None, provider, reporter, parallelism).destroy())
                end("failed", str(exc) + (f" (clean-up problems: {'; '.join(left)})" if left else ""))
            except BaseException as during:  # interrupted or broken while removing the failed attempt
                if not ended:
                    end(*_outcome(during, f"{exc}; then, while removing what it made"))
                raise
            if last:
                if len(viable) == 1:
                    raise
                raise DeploymentFailed(exc.instance, f"every provider tried failed: {' | '.join(errors)}") from None
            _forget_rows(store, dep_id, cfg.name, reporter)
            reporter.event(None, "failover", f"trying the next provider: {viable[n + 1][0].name}")
            continue
        except BaseException as exc:  # every other way out of an attempt ends it with what happened
            end(*_outcome(exc))
            raise
        end("succeeded")
        return changed
    raise AssertionError("no provider to try")


def _forget_rows(store: Store, dep_id: str, provider: str, reporter: Reporter) -> None:
    """Before the next provider is tried: the rows a failed attempt's clean-up could
    not remove describe machines on `provider`, and the next attempt would take the
    rows over and point them at its own. They go; what they named still carries
    the deployment's tag on `provider`, the attempt records what its clean-up left,
    and destroy removes it by tag on every provider an attempt was made on."""
    rows = store.instances(dep_id)
    if not rows:
        return
    reporter.event(None, "failover", f"{len(rows)} instance(s) on {provider} could not be removed; `dodas destroy` "
                   f"removes them from {provider} by the deployment's tag", "warning")
    for node, index in rows:
        store.delete_instance(dep_id, node, index)


def attempt_providers(store: Store, dep_id: str) -> list[str]:
    """Every provider an attempt of the deployment was made on (skipped ones made
    nothing), first tried first."""
    out: list[str] = []
    for a in store.attempts(dep_id):
        if a.status != "skipped" and a.provider not in out:
            out.append(a.provider)
    return out


def _outcome(exc: BaseException, before: str = "") -> tuple[str, str]:
    """(status, cause) an attempt ends with when `exc` ends it."""
    prefix = f"{before}: " if before else ""
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", prefix + f"dodas was stopped by {_signal_name(exc)}"
    if isinstance(exc, DodasError):
        return "failed", prefix + exc.message
    return "failed", f"{prefix}internal error: {type(exc).__name__}: {exc}"


#: the signal that stopped this run, when it was SIGTERM or SIGHUP (see interruptible)
_stopped_by: list[str] = []


def _signal_name(exc: BaseException) -> str:
    return _stopped_by[-1] if _stopped_by else "Ctrl-C or SIGINT"


def _interruption(exc: BaseException) -> str:
    return f"interrupted ({_signal_name(exc)})"


@contextmanager
def interruptible() -> Iterator[None]:
    """Within: SIGTERM and SIGHUP stop dodas the way Ctrl-C does, so that an `up`
    or `destroy` stopped by a signal records its real outcome and releases its lock
    instead of dying silently.

    The handler raises no exception itself: it notes the signal and raises SIGINT,
    so the one mechanism that unwinds cleanly applies (asyncio's runner cancels its
    tasks and then raises KeyboardInterrupt; outside it, Python raises one). An
    exception raised from a handler lands in whatever task is running and is left
    there, unretrieved, with its traceback printed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _stopped_by.clear()

    def handler(signum: int, _frame: Any) -> None:
        _stopped_by.append(signal.Signals(signum).name)
        signal.raise_signal(signal.SIGINT)
    before = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in before.items():
            signal.signal(sig, old)


def after_crash(store: Store, dep_id: str, stale: str) -> None:
    """The last dodas on this deployment died holding the lock: stop what it left
    running (an ansible-playbook carries on after its parent is killed) before
    working, so that two runs never configure the same instance at once, and end
    the attempt it was making as interrupted (it will never end it itself)."""
    from dodas import procs

    h = lock.holder(stale)
    orphans = procs.find_by_env("DODAS_RUN", dep_id)
    store.event(dep_id, "lock", f"took over a lock left by a process that is gone (pid {h.pid} on {h.host}); "
                f"stopping {len(orphans)} process(es) it left running", level="warning")
    procs.terminate(orphans)
    ended = store.end_running_attempts(dep_id, "interrupted", f"its dodas died (pid {h.pid} on {h.host})")
    if ended:
        store.event(dep_id, "lock", f"{ended} attempt(s) of that process recorded as interrupted", level="warning")


def _release(store: Store, dep_id: str, me: str) -> None:
    with store.session() as s:
        lock.release(s, dep_id, me)


def _record(write: Any, *args: Any, **kwargs: Any) -> None:
    """Record how a run ended, or give up quietly: when the state cannot be written
    (a full or read-only disk) the error that is propagating says more than this
    one, and a lock left by a process that has exited is taken over next time."""
    try:
        write(*args, **kwargs)
    except Exception:  # noqa: BLE001 - see above
        pass


def _keep_template(dep_id: str, text: str) -> None:
    paths.write_private(paths.data_dir() / "deployments" / paths.component(dep_id) / "template.yaml", text)


def destroy(name: str, *, parallelism: int, listener: Listener | None = None) -> list[str]:
    """Remove everything a deployment made; safe to repeat. Returns problems left."""
    store = Store()
    dep = store.require(name)
    me = lock.me()
    with store.session() as s:
        stale = lock.acquire(s, s.get(type(dep), dep.id), me)
    if stale:
        after_crash(store, dep.id, stale)
    try:
        with interruptible():
            store.set_status(dep.id, DS.DELETE_IN_PROGRESS.value)
            provider = get_provider(dep.provider)
            # earlier attempts' providers too: a failed attempt whose clean-up failed left its machines there
            others, problems = [], []
            for pname in attempt_providers(store, dep.id):
                if pname == dep.provider:
                    continue
                try:
                    others.append(get_provider(pname))
                except DodasError as exc:
                    problems.append(f"cannot check what an earlier attempt left on provider {pname}: {exc}")
            run = engine(store, dep.id, name, None, provider, Recorder(store, dep.id, listener), parallelism)
            problems = asyncio.run(run.destroy(others)) + problems
        if problems:
            store.set_status(dep.id, DS.DELETE_FAILED.value, "; ".join(problems))
            raise DodasError(f'destroying "{name}" left problems (run destroy again to retry):\n  '
                             + "\n  ".join(problems))
        store.set_status(dep.id, DS.DELETE_COMPLETE.value)
        store.event(dep.id, "delete", "everything deleted")
        from dodas.state import autoscalers
        autoscalers.forget(name)
        return problems
    except BaseException as exc:
        if not str(exc).startswith(f'destroying "{name}" left problems'):  # that one set its own status
            reason = (_interruption(exc) if isinstance(exc, KeyboardInterrupt)
                      else environment_problem(exc) or str(exc) or type(exc).__name__)
            _record(store.set_status, dep.id, DS.DELETE_FAILED.value, reason)
        raise
    finally:
        _record(_release, store, dep.id, me)


class HolderAliveError(DodasError):
    """`dodas unlock` of a lock whose holder may still be working."""

    exit_code = 3


def unlock(name: str, force: bool = False) -> str | None:
    """Clear a deployment's lock; returns who held it.

    Refused while the holder runs on this host, even with `force`: it is working,
    and clearing its lock would let a second dodas change the same machines at
    once (a `destroy` under a running `up`). `force` is for what cannot be
    checked from here: a holder on another host, or an old owner without a start
    time, whose pid may now name another process."""
    store = Store()
    dep = store.require(name)
    if not dep.lock_owner:
        return None
    h = lock.holder(dep.lock_owner)
    if force and lock.proven_alive(h):
        raise HolderAliveError(f'deployment "{name}" is locked by pid {h.pid} on this host ({h.host}), which is '
                               f"still running (same pid and start time): --force is refused, as clearing the "
                               f"lock of a live dodas would let two change the same machines at once. Wait for it "
                               f"to finish, or stop it (kill {h.pid}); then run \"dodas unlock {name}\" if the "
                               f"lock is still there.")
    if not force and not lock.is_stale(dep.lock_owner):
        where = (f"pid {h.pid} on this host is still running" if h.alive else
                 f"it is held from another host ({h.host}, pid {h.pid}), where dodas cannot check that process")
        raise HolderAliveError(f'deployment "{name}" is locked and {where}. Wait for that dodas to finish; '
                               f'if you are sure it is gone, run "dodas unlock {name} --force".')
    with store.session() as s:
        lock.force_release(s, dep.id)
    how = "dodas unlock --force" if force else "dodas unlock"
    store.event(dep.id, "lock", f"lock of pid {h.pid} on {h.host} cleared by {how}"
                + ("" if h.alive is False else " (its holder was not known to be gone)"), level="warning")
    ended = store.end_running_attempts(dep.id, "interrupted", f"its dodas (pid {h.pid} on {h.host}) lost its "
                                       f"lock to {how}")
    if ended:
        store.event(dep.id, "lock", f"{ended} attempt(s) of that process recorded as interrupted", level="warning")
    return dep.lock_owner
