"""The progress display of long commands.

The engine records every event itself (engine/recorder.py); this listener only
shows those worth a line: a Rich status line with the count of instances ready
on a terminal, plain lines otherwise (CI logs, pipes). Calls come from the
engine's loop and from the Ansible runner's thread, hence the lock.
"""

from __future__ import annotations

import threading

from dodas.redact import redact

_ICON = {"created": "[green]+[/]", "started": "[green]✓[/]", "error": "[red]✗[/]", "deleted": "[yellow]-[/]",
         "creating": "[cyan]…[/]", "configuring": "[cyan]…[/]", "deleting": "[yellow]…[/]"}


class ConsoleListener:
    def __init__(self, quiet: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.quiet = quiet
        self.lock = threading.Lock()
        self.states: dict[str, str] = {}
        self.status = None

    def _line(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, soft_wrap=True)

    def _refresh(self) -> None:
        if self.status is None and self.console.is_terminal and not self.quiet:  # from the first event on
            self.status = self.console.status("working…")
            self.status.start()
        if self.status is not None:
            total = len(self.states)
            ready = sum(1 for s in self.states.values() if s in ("created", "started", "deleted"))
            self.status.update(f"{ready}/{total} instances done")

    def state(self, inst: str, state: str, detail: str = "") -> None:
        with self.lock:
            self.states[inst] = state
            if state in ("created", "started", "error", "deleted", "creating", "configuring", "deleting"):
                first = detail.splitlines()[0] if detail else ""
                self._line(f"{_ICON.get(state, ' ')} {escape(f'{inst:<28}')} {state}"
                           + (f": {escape(redact(first))}" if first else ""))
            self._refresh()

    def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None:
        with self.lock:
            if level in ("warning", "error") or (level == "info" and phase != "state"):
                where = escape(f"{inst:<28} ") if inst else ""
                first = escape(redact(message.splitlines()[0])) if message else ""
                self._line(f"  {where}[dim]{phase}[/]: {first}")
            self._refresh()

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def escape(text: str) -> str:
    """Rich's markup escaped (Rich is imported by a listener that shows something)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


class QuietListener:
    """--quiet and --json: nothing is shown (the engine records every event itself),
    so neither Rich nor a console is made."""

    def state(self, inst: str, state: str, detail: str = "") -> None:
        pass

    def event(self, inst: str | None, phase: str, message: str, level: str = "info") -> None:
        pass

    def close(self) -> None:
        pass


#: events an operation records when it ends, without showing them: the command's
#: result line says the same (services/deploy.py: apply's and destroy's last events)
_RESULT_EVENTS = (("deploy", "complete"), ("deploy", "nothing to do"), ("delete", "everything deleted"))


def replay(listener: ConsoleListener | QuietListener, event: dict) -> None:
    """Show a recorded event (a server's event stream) as the listener showed it
    when the engine reported it: the engine records a state change as the
    event ("state", "STATE[: detail]"), and everything else as it reported it;
    the closing events a local run records without showing are left out."""
    inst, message = event.get("instance"), event.get("message") or ""
    if not inst and any(event.get("phase") == phase and message.startswith(start) for phase, start in _RESULT_EVENTS):
        return
    if event.get("phase") == "state" and inst:
        state, _, detail = message.partition(": ")
        listener.state(inst, state, detail)
    else:
        listener.event(inst, event.get("phase") or "", message, event.get("level") or "info")


def factory(quiet: bool = False) -> ConsoleListener | QuietListener:
    """The listener of one command (its `close()` ends the status line)."""
    return QuietListener() if quiet else ConsoleListener()
