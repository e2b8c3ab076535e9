"""Errors that reach the user.

Every failure a user can cause is raised as a `DodasError` subclass; the CLI turns
it into a message and an exit code, never a traceback. Template problems carry
`Diagnostic`s so that all of them are reported at once, each with FILE:LINE:COL.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, order=True)
class Diagnostic:
    """One located problem. Lines and columns are 1-based, as editors count them."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "col": self.col, "message": self.message}


class DodasError(Exception):
    """A failure explained to the user; `exit_code` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(DodasError):
    """A command-line value that is not what its option takes (a duration that is
    not one, --raw without a KEY): exit 2, as the parser's own usage errors."""

    exit_code = 2


@dataclass
class TemplateError(DodasError):
    """A template (or its inputs) is not valid; holds every problem found."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.diagnostics = sorted(set(self.diagnostics))
        DodasError.__init__(self, "\n".join(str(d) for d in self.diagnostics))

    def __str__(self) -> str:
        return self.message


def no_deployment_message(name: str, known: list[str]) -> str:
    """What is said of a deployment name nobody holds, naming (some of) those the
    asker may use: the state's rows locally, the caller's own through a server."""
    shown = ", ".join(known[:20]) + (", ... (see `dodas list`)" if len(known) > 20 else "")
    hint = f" (known: {shown})" if known else " (there are none; see `dodas up`)"
    return f'no deployment named "{name}"{hint}'
