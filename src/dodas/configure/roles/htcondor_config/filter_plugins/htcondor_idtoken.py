"""`key | dodas_htcondor_idtoken(identity, issuer, scopes)`: IDTOKENS for the pool's
daemons, signed by dodas.htcondor_tokens (the one home of the signing, which the
autoscaler uses too). ansible-playbook runs with dodas's Python, so dodas is
importable; the module is loaded from its file beside this role otherwise."""

from __future__ import annotations

from typing import Any

try:
    from dodas.htcondor_tokens import POOL_KEY_ID, hkdf_sha256, idtoken, jwt_key, scramble
except ImportError:  # an ansible-playbook with another Python: the same file, by its path
    import importlib.util
    from pathlib import Path

    _spec = importlib.util.spec_from_file_location(
        "dodas_htcondor_tokens", Path(__file__).resolve().parents[3].parent / "htcondor_tokens.py")
    assert _spec is not None and _spec.loader is not None
    _mod = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mod)
    POOL_KEY_ID, hkdf_sha256, idtoken, jwt_key, scramble = (_mod.POOL_KEY_ID, _mod.hkdf_sha256, _mod.idtoken,
                                                            _mod.jwt_key, _mod.scramble)

__all__ = ["POOL_KEY_ID", "FilterModule", "hkdf_sha256", "idtoken", "jwt_key", "scramble"]


class FilterModule:
    """`key | dodas_htcondor_idtoken(identity, issuer, scopes)` in the HTCondor plays."""

    def filters(self) -> dict[str, Any]:
        return {"dodas_htcondor_idtoken": idtoken}
