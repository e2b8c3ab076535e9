"""Who may see and do what on the server, as the faces and the login code name
it: the rules themselves live in services/tenancy.py, the one home of a shared
server's rules (owners, groups, the admin group, quotas, the queue)."""

from __future__ import annotations

from dodas.services.tenancy import (LOCAL, Caller, Refused, Usage, allowed, can_operate, can_read, check_quota,
                                    plan_usage, providers_for)

__all__ = ["LOCAL", "Caller", "Refused", "Usage", "allowed", "can_operate", "can_read", "check_quota", "plan_usage",
           "providers_for"]
