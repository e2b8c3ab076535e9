"""`dodas server`: the REST API face over services/ (routes, auth, access, workers)."""
