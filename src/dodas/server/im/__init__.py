"""The Infrastructure Manager's REST API, as a face of `dodas server` (under `/im`).

DODAS's clients (the DODAS Go client, CLUES, scripts written for IM) speak the
Infrastructure Manager's API: TOSCA in, infrastructure URIs out, an
`Authorization` header in IM's auth-file format. This package lets them use a
dodas server unchanged for the subset they call. It is a face only: `routes.py`
turns IM's requests into calls of server/operations.py (the one home of the
server's operations: access, quotas, planning with a server's rules, the work
queue) and their results into IM's media types; `auth.py` reads IM's header and
validates its token as every face does; `states.py` says dodas's states in IM's
vocabulary. No deployment logic lives here.
"""
