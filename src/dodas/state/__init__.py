"""Persistent state: SQLAlchemy models, the store, deployment locks, Alembic migrations."""
