"""The graph walk.

Compute instances are created by the provider, each as soon as what it needs is
done, at most `parallelism` at a time. Software instances are configured with
Ansible a wave at a time: once every instance of the lowest pending wave has what
it needs, the whole wave goes to one ansible-playbook run (create, configure and
start plays over all its hosts), which is what keeps a 20-worker cluster fast.

Every state change is written to the store when it happens, before the step it
announces: the changes (and events) of one turn of the loop go in one
transaction (`_commit`), so that a thousand instances do not cost a thousand
transactions, and a crash loses at most the step in flight. On the first failure
nothing new is started, running work finishes, and DeploymentFailed names the
instance and quotes the tail of its output. Re-running reconciles: an instance is
worked on only if it is missing, its configuration fingerprint changed, or a
service it started is no longer running.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, Protocol

from dodas import paths
from dodas.configure.runner import Host, Play, RunResult, host_name
from dodas.engine import access
from dodas.engine.configurator import Configurator
from dodas.engine.context import RunContext, UnresolvedError
from dodas.engine.retry import with_retries
from dodas.engine.states import COMPUTE_READY, InstanceState
from dodas.engine.teardown import Teardown
from dodas.environment import environment_problem
from dodas.errors import DodasError
from dodas.model.network import ingress_rules
from dodas.model.deployment import DEPLOY_OPERATIONS, UNDEPLOY_OPERATIONS, Instance
from dodas.plan.plan import Plan
from dodas.providers.base import ComputeRequest, Machine, Provider, ProviderError
from dodas.ssh_access import Endpoint
from dodas.state.store import InstanceChange, Store

S = InstanceState


class DeploymentFailed(DodasError):
    def __init__(self, instance: str, cause: str) -> None:
        super().__init__(f"{instance} failed: {cause}")
        self.instance = instance
        self.cause = cause


class Reporter(Protocol):
    def state(self, inst: str, state: str, detail: str = "") -> None: ...

    def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None: ...


class Engine:
    """One run over a deployment: `up` (walk the plan), `remove`, `destroy`. It is
    handed the provider that makes machines and the configurator that runs the
    operations on them (services/deploy.py chooses both), and holds a Teardown
    for taking things down."""

    def __init__(self, store: Store, dep_id: str, dep_name: str, plan: Plan | None, provider: Provider,
                 configurator: Configurator, reporter: Reporter, parallelism: int = 10) -> None:
        self.store = store
        self.dep_id = dep_id
        self.dep_name = dep_name
        self.plan = plan
        self.provider = provider
        self.configurator = configurator
        self.reporter = reporter
        self.parallelism = max(1, parallelism)
        self.rows = store.instances(dep_id)
        self.configurator.remove_leftovers()  # an engine exists only under the deployment lock
        self.teardown = Teardown(self)
        self.changed = False
        self._queued: list[InstanceChange] = []  # instance changes not written yet (see _commit)
        self._writing: asyncio.Future[None] | None = None
        self._recording = 0
        self._reached: set[str] = set()  # machines logged in to in this run (by provider id)
        self.ctx = RunContext.from_rows(plan.model, dep_id, dep_name, self.rows) if plan else None
        self.machines: dict[tuple[str, int], Machine] = {
            key: Machine.from_attributes(row.attributes) for key, row in self.rows.items()
            if row.kind == "compute" and row.attributes.get("provider_id")}
        if self.ctx is not None:  # one Machine object per machine, shared by both views
            self.ctx.machines = {Instance(*key): m for key, m in self.machines.items()}

    # -- recording -----------------------------------------------------------------
    def _save(self, inst: Instance, state: S, **fields: Any) -> None:
        """Record a state change; written by the next `_commit` (at the latest when
        the run ends), with the other changes and events of this turn of the loop."""
        self._queued.append((inst.node, inst.index, {"state": state.value, **fields}))
        self._wake()
        self.reporter.state(inst.id, state.value, fields.get("error") or "")

    def _drop(self, key: tuple[str, int]) -> None:
        """Record that an instance is gone (its row is deleted), as _save does."""
        self._queued.append((key[0], key[1], None))
        self._wake()
        self.rows.pop(key, None)
        self.reporter.state(Instance(*key).id, S.DELETED.value)

    def _write(self) -> None:
        """Write every queued change and kept event now, in one transaction."""
        changes, self._queued = self._queued, []
        drain = getattr(self.reporter, "drain", None)
        events = drain() if drain is not None else []
        if not changes and not events:
            return
        saved = self.store.write(self.dep_id, changes, events)
        for node, index, fields in changes:
            if fields is None:
                self.rows.pop((node, index), None)
        self.rows.update(saved)

    def _wake(self) -> None:
        """Have what is queued written at the end of this turn of the loop."""
        if self._writing is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the loop: written by the next _commit or at the end of the run
            return
        self._writing = loop.create_future()
        # one more turn before writing: a task that finishes frees its slot of the
        # semaphore, and the task that takes the slot then queues its own change,
        # which goes into the same transaction
        loop.call_soon(loop.call_soon, self._write_turn)

    def _write_turn(self) -> None:
        fut, self._writing = self._writing, None
        try:
            self._write()
        except BaseException as exc:  # noqa: BLE001 - handed to every task waiting for it
            if fut is not None and not fut.done():
                fut.set_exception(exc)
                fut.exception()  # those that wait re-raise it; none waiting is no "never retrieved" warning
            return
        if fut is not None and not fut.done():
            fut.set_result(None)

    async def _commit(self) -> None:
        """Return once what this task queued is written: in one transaction with
        what every other task queued in the same turn of the loop (group commit)."""
        if not self._queued and self._writing is None:
            return
        self._wake()
        if self._writing is not None:
            await asyncio.shield(self._writing)

    @contextmanager
    def recording(self) -> Iterator[None]:
        """Around a run: the reporter's events are kept and written with the
        instance changes; whatever is still queued is written on the way out,
        exception or not, and the configurator's connections are closed."""
        outer = not self._recording
        self._recording += 1
        batch = getattr(self.reporter, "batch", None) if outer else None
        try:
            with batch(self._wake) if batch is not None else nullcontext():
                try:
                    yield
                except BaseException:
                    if outer:
                        try:
                            self._write()
                        except Exception:  # noqa: BLE001 - the exception on its way out says more
                            pass
                    raise
                if outer:
                    self._write()
        finally:
            self._recording -= 1
            if outer:
                self.configurator.close()

    # -- up ------------------------------------------------------------------------
    async def up(self) -> bool:
        with self.recording():
            return await self._up()

    async def _up(self) -> bool:
        assert self.plan is not None and self.ctx is not None
        wanted = {(i.node, i.index) for i in self.plan.instances}
        gone = [k for k in self.rows if k not in wanted]
        if gone:
            self.reporter.event(None, "update", f"removing {len(gone)} instance(s) no longer in the plan: "
                                + ", ".join(paths.instance_id(n, i) for n, i in sorted(gone)))
            await self.remove(gone)
            self.changed = True
        self._generate_secrets()
        await with_retries(lambda: self.provider.prepare(self.dep_id, self.dep_name, ingress_rules(self.plan.model)),
                           base=self.provider.retry_base)
        await self._walk()
        if self.changed:
            await self._verify()
        return self.changed

    def _generate_secrets(self) -> None:
        """Every secret dodas generates, made before anything is worked on: a node
        may read another's (a Spark worker, its master's secret) without waiting."""
        assert self.plan is not None and self.ctx is not None
        made = []
        for inst in self.plan.instances:
            new = self.ctx.ensure_secrets(inst)
            if new:
                made.append((inst.node, inst.index, {"kind": "software", "secrets": new}))
        if made:
            self.store.write(self.dep_id, made)

    async def _walk(self) -> None:
        plan = self.plan
        assert plan is not None
        # dependency counters: an instance is ready when its count reaches zero
        waiting = {i: len(p.depends_on) for i, p in plan.instances.items()}
        users: dict[Instance, list[Instance]] = {i: [] for i in plan.instances}
        for i, p in plan.instances.items():
            for d in p.depends_on:
                users[d].append(i)
        ready_computes = sorted((i for i, n in waiting.items() if n == 0 and plan.instances[i].node.is_compute),
                                key=lambda i: (i.node, i.index))
        software: dict[int, set[Instance]] = {}  # pending software instances by wave
        for i, p in plan.instances.items():
            if not p.node.is_compute:
                software.setdefault(p.wave, set()).add(i)
        done: set[Instance] = set()
        inflight: dict[asyncio.Task[Any], list[Instance]] = {}
        # finished tasks, in the order they finish (asyncio.wait over every task in
        # flight, a thousand of them, on each turn would be quadratic)
        finishing: asyncio.Queue[asyncio.Task[Any]] = asyncio.Queue()

        def start(coro: Any, insts: list[Instance]) -> None:
            task = asyncio.create_task(coro)
            task.add_done_callback(finishing.put_nowait)
            inflight[task] = insts
        configuring = False
        failure: tuple[str, str] | None = None
        sem = asyncio.Semaphore(self.parallelism)

        while True:
            if failure is None:
                for i in ready_computes:
                    start(self._compute(i, sem), [i])
                ready_computes = []
                if software and not configuring:
                    wave = min(software)
                    batch = software[wave]
                    if all(waiting[i] == 0 for i in batch):
                        del software[wave]
                        configuring = True
                        start(self._configure(sorted(batch, key=str)), sorted(batch, key=str))
            if not inflight:
                break
            finished = [await finishing.get()]
            while not finishing.empty():
                finished.append(finishing.get_nowait())
            for task in finished:
                insts = inflight.pop(task)
                if not plan.instances[insts[0]].node.is_compute:
                    configuring = False
                exc = task.exception()
                if exc is not None:
                    problem = environment_problem(exc)
                    failure = failure or (insts[0].id, problem or f"internal error: {type(exc).__name__}: {exc}")
                    continue
                ok, failed = task.result()
                for i in ok:
                    done.add(i)
                    for u in users[i]:
                        waiting[u] -= 1
                        if waiting[u] == 0 and plan.instances[u].node.is_compute:
                            ready_computes.append(u)
                if failed and failure is None:
                    failure = failed
        if failure is not None:
            raise DeploymentFailed(*failure)
        if len(done) != len(plan.instances):  # cannot happen with an acyclic plan; never a silent partial success
            missing = sorted((i for i in plan.instances if i not in done), key=str)[0]
            raise DeploymentFailed(missing.id, "never became ready to run")

    async def _compute(self, inst: Instance, sem: asyncio.Semaphore) -> tuple[list[Instance], tuple | None]:
        assert self.plan is not None and self.ctx is not None
        async with sem:
            row = self.rows.get((inst.node, inst.index))
            if row is not None and row.state in COMPUTE_READY:
                found = await self.provider.describe(self.dep_id, inst.id)
                if found is not None:
                    self.ctx.machines[inst] = found
                    return [inst], None
                self.reporter.event(inst.id, "create", "the machine is gone; creating it again", "warning")
            self._save(inst, S.CREATING, kind="compute", error=None)
            await self._commit()  # recorded before the provider is asked
            req = ComputeRequest(self.dep_id, self.ctx.deployment_name, inst.id,
                                 self.plan.instances[inst].node.compute)  # type: ignore[arg-type]

            def retrying(attempt: int, exc: Exception, delay: float) -> None:
                self.reporter.event(inst.id, "create", f"attempt {attempt} failed ({exc}); retrying in {delay:.1f}s",
                                    "warning")
            try:
                machine = await with_retries(lambda: self.provider.create(req), on_retry=retrying,
                                             base=self.provider.retry_base)
            except ProviderError as exc:
                self._save(inst, S.ERROR, error=str(exc))
                await self._commit()
                return [], (inst.id, str(exc))
            self.ctx.machines[inst] = machine
            self.machines[(inst.node, inst.index)] = machine
            self.changed = True
            self._save(inst, S.CREATED, provider_id=machine.provider_id, attributes=machine.attributes())
            self.reporter.event(inst.id, "create", f"created at {machine.private_address or machine.public_address}")
            # written with the next turn's changes, without holding a slot of the semaphore
            return [inst], None

    async def _configure(self, batch: list[Instance]) -> tuple[list[Instance], tuple | None]:
        from dodas.model.build import SECRET_NAME  # here: destroy needs none of the model's building

        assert self.plan is not None and self.ctx is not None
        ctx = self.ctx
        run: list[tuple[Instance, str, bool]] = []
        parts: dict[Instance, dict[str, str]] = {}
        done: list[Instance] = []
        for inst in sorted(batch, key=lambda i: (i.node, i.index)):
            node = self.plan.instances[inst].node
            try:
                fp = ctx.fingerprint(inst, node)
                parts[inst] = ctx.fingerprint_parts(inst, node)
            except UnresolvedError as exc:
                self._save(inst, S.ERROR, kind="software", error=str(exc))
                await self._commit()
                return done, (inst.id, str(exc))
            row = self.rows.get((inst.node, inst.index))
            if row is not None and row.state == S.STARTED.value and row.config_hash == fp:
                if await self._services_alive(inst, row.attributes):
                    done.append(inst)
                    continue
                self.reporter.event(inst.id, "check", "a service of this instance is not running; starting it again",
                                    "warning")
            restart = bool(row is not None and row.config_hash and row.config_hash != fp)
            run.append((inst, fp, restart))
        if not run:
            return done, None
        self.changed = True
        hosts, plays = self._plays([(i, r) for i, _, r in run], DEPLOY_OPERATIONS)
        for inst, _, _ in run:
            compute = ctx.compute_of(inst)
            self._save(inst, S.CONFIGURING, kind="software", error=None,
                       attributes={"_compute": [compute.node, compute.index] if compute else None})
        await self._commit()  # recorded before Ansible runs
        unreachable = await self._reach(hosts)
        if unreachable:
            host, why = unreachable
            for inst, _, _ in run:
                if ctx.compute_of(inst) == host.compute:
                    self._save(inst, S.ERROR, error=why)
            await self._commit()
            return done, (host.compute.id if host.compute else "controller", why)
        result = await self._run_by_node("configure", hosts, plays)
        for r in result.failures:  # a failure must not keep a half-reported secret around
            result.secret_reports.pop(r, None)
        failure = None
        for inst, fp, _ in run:
            if inst in result.failures:
                self._save(inst, S.ERROR, error=result.failures[inst])
                failure = failure or (inst.id, result.failures[inst])
                continue
            report = result.reports.get(inst, {})
            if result.secret_reports.get(inst):
                ctx.secrets.setdefault(inst, {}).update(result.secret_reports[inst])
                self._queued.append((inst.node, inst.index, {"secrets": result.secret_reports[inst]}))
            node = self.plan.instances[inst].node
            undeploy = {op: {"implementation": node.operations[op].implementation,
                             "inputs": {k: v for k, v in ctx.evaluate(node.operations[op].inputs, inst).items()
                                        if not SECRET_NAME.search(k)}}
                        for op in UNDEPLOY_OPERATIONS
                        if op in node.operations and node.operations[op].implementation}
            # what stop/delete will need even if the template is gone by then (never secrets)
            props = {k: v for k, v in ctx.evaluate(node.properties, inst).items() if not SECRET_NAME.search(k)}
            ctx.attributes[inst] = {**ctx.attributes.get(inst, {}), **report}
            self._save(inst, S.STARTED, config_hash=fp, attributes={**report, "_undeploy": undeploy,
                                                                    "_undeploy_properties": props,
                                                                    "_fingerprint": parts[inst]})
            done.append(inst)
        await self._commit()
        return done, failure

    # -- reaching machines ---------------------------------------------------------
    def _bastion(self) -> Machine | None:
        """The deployment's bastion machine: the plan's, or (destroying, with no plan)
        the first recorded machine with a public address."""
        if self.plan is not None:
            b = self.plan.bastion
            return self.ctx.machines.get(b) if b is not None and self.ctx is not None else None
        return next((m for _, m in sorted(self.machines.items()) if m.public_address), None)

    def _jump(self, machine: Machine | None) -> Endpoint | None:
        return access.jump_for(machine, self.provider, self._bastion()) if machine is not None else None

    async def _reach(self, hosts: dict[str, Host]) -> tuple[Host, str] | None:
        return await access.reach(hosts.values(), self._reached, self.configurator.workdir / "ssh",
                                  self.provider.login_timeout)

    async def _run_by_node(self, phase: str, hosts: dict[str, Host], plays: list[Play]) -> RunResult:
        """One ansible-playbook per node of the wave, side by side: each covers all
        of its node's hosts (so 20 workers are still one process), and different
        nodes (Spark workers and JupyterLab) do not wait for each other's plays."""
        by_node: dict[str, list[Play]] = {}
        for p in plays:
            by_node.setdefault(p.node, []).append(p)
        results = await asyncio.gather(*(asyncio.to_thread(self.configurator.run, phase, hosts, ps)
                                         for ps in by_node.values()))
        merged = RunResult()
        for r in results:
            merged.failures.update(r.failures)
            merged.reports.update(r.reports)
            merged.secret_reports.update(r.secret_reports)
            merged.ok.update(r.ok)
        return merged

    async def _services_alive(self, inst: Instance, attributes: dict[str, Any]) -> bool:
        """Whether every service the instance recorded still runs, by pid and start
        time: a pid reused by another program does not pass for the service."""
        from dodas.providers.base import ProcessRef

        services = attributes.get("services") or {}
        recorded = [r for r in map(ProcessRef.from_record, services.values()) if r is not None]
        machine = self.ctx.machine_of(inst) if self.ctx else None
        if not recorded or machine is None:
            return True
        alive = await self.provider.processes_alive(machine, recorded)
        return alive is None or all(alive.get(r, False) for r in recorded)

    def _plays(self, insts: list[tuple[Instance, bool]],
               operations: Iterable[str]) -> tuple[dict[str, Host], list[Play]]:
        assert self.plan is not None and self.ctx is not None
        hosts: dict[str, Host] = {}
        plays: dict[tuple[str, str], Play] = {}
        for op_name in operations:
            for inst, restart in insts:
                node = self.plan.instances[inst].node
                op = node.operations.get(op_name)
                if op is None or not op.implementation:
                    continue
                compute = self.ctx.compute_of(inst)
                hname = host_name(compute)
                machine = self.ctx.machines.get(compute) if compute else None
                hosts.setdefault(hname, Host(hname, compute, machine, self._jump(machine)))
                play = plays.setdefault((node.name, op_name), Play(node.name, op_name, op.implementation))
                variables = self.ctx.variables(inst, node, op.inputs)
                variables["dodas_restart"] = restart
                if compute is None:
                    variables.update(self.provider.controller_variables())
                play.targets[hname] = (inst, variables)
        return hosts, list(plays.values())

    async def _verify(self) -> None:
        assert self.plan is not None
        checks = [(i, False) for i, p in self.plan.instances.items() if "Verify.check" in p.node.operations]
        if not checks:
            return
        hosts, plays = self._plays(checks, ["Verify.check"])
        self.reporter.event(None, "verify", f"verifying {len(checks)} instance(s)")
        result = await asyncio.to_thread(self.configurator.run, "verify", hosts, plays)
        if result.failures:
            inst, msg = sorted(result.failures.items(), key=lambda kv: kv[0].id)[0]
            self._save(inst, S.ERROR, error=f"verification failed: {msg}")
            raise DeploymentFailed(inst.id, f"verification failed: {msg}")

    # -- removal (engine/teardown.py) -------------------------------------------------
    async def remove(self, keys: list[tuple[str, int]]) -> list[str]:
        """Stop and delete instances, software first; the problems met."""
        return await self.teardown.remove(keys)

    async def destroy(self, others: Iterable[Provider] = ()) -> list[str]:
        """Remove every instance, then what still carries the deployment's tag here
        and on `others`; the problems met."""
        return await self.teardown.destroy(others)
