"""Alembic environment: dodas runs migrations itself, on the connection it opened."""

from alembic import context

from dodas.state import web_models, work_models  # noqa: F401 - their tables are part of the metadata
from dodas.state.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` command line, for writing new revisions
    from sqlalchemy import create_engine

    from dodas.state.db import db_url

    connection = create_engine(db_url()).connect()

context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
