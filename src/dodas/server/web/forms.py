"""A template's inputs as an HTML form, and a posted form back as inputs.

Each input gets the widget of its type: a number with the bounds of its
constraints (also said in words under the field: `bounds_text`), a select for
`valid_values`, a checkbox for a boolean, a text with
a size pattern for memory sizes, a password field for a secret (never filled
in: its value is not sent back to the browser). The page checks the same
bounds before sending (static/dashboard.js); the server checks everything
again by planning, and its located messages (a bad value is located at
`<-i NAME>`) are shown next to the field they are about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dodas.errors import Diagnostic

SIZE_PATTERN = r"\s*[0-9]+(\.[0-9]+)?\s*([kKMGTP]i?B|B)\s*"
_BOUNDS = {"greater_or_equal": "min", "greater_than": "min_exclusive", "less_or_equal": "max",
           "less_than": "max_exclusive"}
#: length constraints as the HTML attributes that enforce them in the page
_LENGTHS = {"length": ("minlength", "maxlength"), "min_length": ("minlength",), "max_length": ("maxlength",)}


@dataclass
class Field:
    name: str
    label: str
    widget: str  # number, select, checkbox, size, password, text, textarea
    help: str = ""
    value: str = ""
    required: bool = False
    options: list[str] = field(default_factory=list)
    attrs: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    secret: bool = False
    #: the template's constraints in words ("From 1 to 6."), shown under the field
    bounds: str = ""


def fields(inputs: list[dict[str, Any]], values: dict[str, Any] | None = None, *,
           keep_secrets: bool = False) -> list[Field]:
    """The form of catalogue.describe()'s inputs, filled with `values` (what was
    posted, or the deployment's current inputs) over the defaults. With
    `keep_secrets` (updating a deployment) an empty secret field keeps its value."""
    values = values or {}
    out = []
    for spec in inputs:
        name, kind = spec["name"], spec["type"]
        label, help_ = words(name, spec.get("description") or "")
        f = Field(name, label, "text", help_, required=bool(spec.get("required")) and not keep_secrets,
                  secret=bool(spec.get("secret")))
        current = values.get(name, spec.get("default"))
        constraints = spec.get("constraints") or []
        for c in constraints:
            op, bound = c["operator"], c["value"]
            if op == "valid_values" and isinstance(bound, list):
                f.options = [_text(v) for v in bound]
            elif op in _BOUNDS and isinstance(bound, (int, float)) and not isinstance(bound, bool):
                f.attrs[_BOUNDS[op]] = _text(bound)
            elif op == "in_range" and isinstance(bound, list) and len(bound) == 2 \
                    and all(isinstance(b, (int, float)) for b in bound):
                f.attrs["min"], f.attrs["max"] = _text(bound[0]), _text(bound[1])
            elif op in _LENGTHS and isinstance(bound, int):
                f.attrs.update({a: str(bound) for a in _LENGTHS[op]})
        f.bounds = bounds_text(constraints)
        if f.secret:
            f.widget, current = "password", None
            if keep_secrets:
                f.help = (f.help + " " if f.help else "") + "Leave empty to keep the current value."
        elif f.options:
            f.widget = "select"
        elif kind == "boolean":
            f.widget = "checkbox"
        elif kind in ("integer", "float"):
            f.widget = "number"
            f.attrs["step"] = "1" if kind == "integer" else "any"
        elif kind == "scalar-unit.size":
            f.widget = "size"
            f.attrs["pattern"] = SIZE_PATTERN
            f.attrs["title"] = "a size such as 2 GiB or 512 MB"
        elif kind in ("list", "map"):
            f.widget = "textarea"
            f.help = (f.help + " " if f.help else "") + f"As YAML ({kind})."
        f.value = "" if current is None else _text(current)
        out.append(f)
    return out


def bounds_text(constraints: list[dict[str, Any]]) -> str:
    """The template's constraints on an input as a sentence a form shows under
    the field: "From 1 to 6.", "At least 2 GiB.", "One of: a, b.", "At most 20
    characters." The server holds a posted value to the same constraints."""
    said: dict[str, str] = {}
    for c in constraints:
        op, v = c["operator"], c["value"]
        if op == "in_range" and isinstance(v, list) and len(v) == 2:
            said["min"], said["max"] = f"{_text(v[0])}", f"{_text(v[1])}"
        elif op == "greater_or_equal":
            said["min"] = _text(v)
        elif op == "greater_than":
            said["more"] = _text(v)
        elif op == "less_or_equal":
            said["max"] = _text(v)
        elif op == "less_than":
            said["less"] = _text(v)
        elif op == "equal":
            said["equal"] = f"Must be {_text(v)}."
        elif op == "valid_values" and isinstance(v, list):
            said["values"] = "One of: " + ", ".join(_text(x) for x in v) + "."
        elif op == "length":
            said["length"] = f"Exactly {v} characters."
        elif op == "min_length":
            said["min_length"] = f"At least {v} characters."
        elif op == "max_length":
            said["max_length"] = f"At most {v} characters."
        elif op == "pattern":
            said["pattern"] = f"Must match the pattern {_text(v)}."
    parts = []
    low = ("min", said["min"]) if "min" in said else ("more", said["more"]) if "more" in said else None
    high = ("max", said["max"]) if "max" in said else ("less", said["less"]) if "less" in said else None
    if low and high and low[0] == "min" and high[0] == "max":
        parts.append(f"From {low[1]} to {high[1]}.")
    else:
        if low:
            parts.append(f"At least {low[1]}." if low[0] == "min" else f"More than {low[1]}.")
        if high:
            parts.append(f"At most {high[1]}." if high[0] == "max" else f"Less than {high[1]}.")
    parts += [said[k] for k in ("equal", "values", "length", "min_length", "max_length", "pattern") if k in said]
    return " ".join(parts)


def words(name: str, description: str) -> tuple[str, str]:
    """A field's label and help from its input's description: a short first
    sentence is the label ("How many Spark worker hosts"), the rest the help; a
    long or missing one leaves the input's name as the label. The help ends with
    the input's name, which the template and the command line use."""
    from dodas.server.web.wording import for_form

    text = for_form(" ".join(description.split()))
    first, _, rest = text.partition(". ")
    first = first.rstrip(".")
    if first and len(first) <= 60 and "(" not in first:
        label, help_ = first[0].upper() + first[1:], rest
    else:
        label, help_ = name.replace("_", " ").capitalize(), text
    return label, (help_ + " " if help_ else "") + f"(input {name})"


def posted(inputs: list[dict[str, Any]], form: dict[str, str], *, keep_secrets: bool = False) -> dict[str, str]:
    """The inputs a posted form gives, as `-i` gives them (text, read as YAML for
    inputs that are not strings): an empty field is not given (its default, or
    its current value, stays), except a string with no default; an unchecked box
    is false."""
    out: dict[str, str] = {}
    for spec in inputs:
        name = spec["name"]
        if spec["type"] == "boolean" and not spec.get("secret"):
            out[name] = "true" if form.get(name) in ("true", "on", "1") else "false"
            continue
        value = form.get(name, "")
        if value.strip() == "":
            if spec.get("secret") and keep_secrets:
                continue
            if "default" in spec or not spec.get("required") or spec["type"] != "string":
                continue
        out[name] = value
    return out


def place(diagnostics: list[Diagnostic], fields_: list[Field]) -> list[str]:
    """Put each message next to the field it is about; returns those about none
    (the template itself, the providers), shown above the form."""
    from dodas.server.web.wording import for_form

    by_name = {f.name: f for f in fields_}
    rest = []
    for d in diagnostics:
        m = re.fullmatch(r"<-i (.+)>", d.file)
        if m and m.group(1) in by_name:
            f = by_name[m.group(1)]
            f.errors.append(_outside(_plain(d.message), f.bounds) or for_form(_plain(d.message)))
        else:
            rest.append(for_form(str(d) if d.file and not d.file.startswith("<") else d.message))
    return rest


def _outside(message: str, bounds: str) -> str | None:
    """A value outside the template's constraints, in the words the field shows
    them in: "Outside the template's bounds (from 1 to 5): got 9."."""
    if not bounds or "violates constraint" not in message:
        return None
    said = "; ".join(b[0].lower() + b[1:] for b in bounds.rstrip(".").split(". "))
    got = re.search(r"\(got (.*)\)\s*$", message)
    return f"Outside the template's bounds ({said})" + (f": got {got.group(1)}." if got else ".")


def _plain(message: str) -> str:
    """A message about an input without the template's inner location, which means nothing in a form."""
    return re.sub(r" \(declared at [^)]*\)$", "", message)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        import yaml
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)
