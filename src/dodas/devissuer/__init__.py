"""A small OpenID Connect issuer for trying `dodas server` out. NOT FOR PRODUCTION.

It keeps everything in memory, reads plain passwords from a YAML file, has no
CSRF protection, no rate limiting, no consent screen and no persistence: it
exists so that the server, the CLI's `login` (the device flow) and, later, a
web dashboard (authorization code with PKCE) can be exercised end to end on one
machine, against real HTTP, real keys and real discovery, without an INDIGO IAM,
EGI Check-in or Keycloak at hand. It refuses to listen on anything but loopback.

    python -m dodas.devissuer --host 127.0.0.1 --port 8400 --config users.yaml

It knows nothing of dodas (tests/test_architecture.py): it could be any issuer.
"""
