"""The server's refusals in the words of the dashboard's forms.

Messages from planning and the providers are written for the command line:
they tell the user to pass `--provider` or `--overcommit`. In a form those
flags mean nothing: the provider is the form's "Provider" field, and the
dashboard offers no overcommit (the operator's allocation ratios decide).
This module is the one place that rewrites them, and that decides which field
a refusal is about, so that the page can show it under that field; a refusal
about no field is shown above the form. (The server's file paths are already
gone: services/answers.py makes every answer public.)
"""

from __future__ import annotations

import re

#: command-line phrases, and what the form calls the same thing
_PHRASES = [
    # a chosen provider's own refusal (its preflight: capacity, quota): said once, as the provider's
    (r"^cannot deploy on provider ([\w.-]+):\s*(?:provider \1: |\1: )?", r"provider \1 cannot take this deployment: "),
    (r",? or accept the overcommit with --overcommit", ""),
    (r"\(?see the server's provider configuration, or choose one with --provider\)?",
     "(choose another in the Provider field, or ask the operator for one)"),
    (r"\(see the server's provider configuration\)", "(ask the operator of this server for one)"),
    (r"\(choose a cloud with --provider, or ", "(choose a cloud in the Provider field, or "),
    (r"\(choose one with --provider\)", "(choose one in the Provider field)"),
    (r"or choose one with --provider", "or choose one in the Provider field"),
    (r"Deploy (?:it )?with --provider set to a provider of type (\w+)",
     r"Choose a provider of type \1 in the Provider field"),
    (r"deploy (?:it )?with --provider set to a provider of type (\w+)",
     r"choose a provider of type \1 in the Provider field"),
    (r"--provider", "the Provider field"),
    (r"\(a kubeconfig and a context in providers\.yaml\)", "(one the operator configured)"),
    (r"\bproviders\.yaml\b", "the server's provider configuration"),
    (r"--overcommit", "an overcommit, which the operator's allocation ratios decide"),
    (r"\bdodas (?:destroy|forget) ([\w.-]+)", r"destroying \1 first"),
]


def for_form(message: str) -> str:
    """`message` as a form's user reads it: no command-line flags."""
    out = message
    for pattern, words in _PHRASES:
        out = re.sub(pattern, words, out)
    return out


def field_of(message: str, chosen_provider: str | None = None) -> str | None:
    """The form's field a refusal is about ("name", "provider"), or None for the
    request as a whole (a quota, the template, no provider at all). A refusal
    naming the provider the user chose (its capacity, its quota, a kind it
    cannot hold) is about the Provider field: another one may take it."""
    lowered = message.lower()
    if re.search(r"\bname\b|already exists|is taken|deployment \"[^\"]+\" (exists|is )", lowered) \
            and "quota" not in lowered:
        return "name"
    if re.search(r"\bprovider [\"']?[\w.-]+[\"']? (is not|isn't|may not|cannot|can not)\b|not allowed to use", lowered):
        return "provider"
    if chosen_provider and re.search(rf"\bprovider [\"']?{re.escape(chosen_provider.lower())}[\"']?(?![\w.-])",
                                     lowered):
        return "provider"
    return None
