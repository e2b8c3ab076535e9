"""The state schema: a row per deployment, per instance, per event.

Nothing is kept as one blob of the whole deployment: an instance's progress is
one small UPDATE, so a crash loses at most the step in flight, and readers
(`dodas status`, the server later) see each instance's state as it changes.
The template text and inputs are kept with their hashes, so a deployment can be
re-planned from the state alone and a changed input is seen at once.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dodas import paths


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Deployment(Base):
    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    provider: Mapped[str] = mapped_column(String(64))
    template_path: Mapped[str] = mapped_column(Text)
    template_text: Mapped[str] = mapped_column(Text)
    template_sha256: Mapped[str] = mapped_column(String(64))
    inputs: Mapped[dict] = mapped_column(JSON)
    inputs_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    #: the lock: who holds it ("host:pid:start-time"), since when
    lock_owner: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lock_acquired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    instances: Mapped[list[InstanceRow]] = relationship(back_populates="deployment", cascade="all, delete-orphan")


class InstanceRow(Base):
    __tablename__ = "instances"
    __table_args__ = (UniqueConstraint("deployment_id", "node", "index", name="uq_instance"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    node: Mapped[str] = mapped_column(String(255))
    index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # compute | software
    state: Mapped[str] = mapped_column(String(16))
    #: the provider's id for a compute instance (server id, work directory, host name)
    provider_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    #: run-time attributes: addresses, process groups, urls (never secrets)
    attributes: Mapped[dict] = mapped_column(JSON, default=dict)
    #: generated secrets (tokens); kept apart so no code path prints them by accident
    secrets: Mapped[dict] = mapped_column(JSON, default=dict)
    #: hash of what the last successful configuration ran with; a change means re-run
    config_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)

    deployment: Mapped[Deployment] = relationship(back_populates="instances")

    @property
    def instance_id(self) -> str:
        return paths.instance_id(self.node, self.index)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_deployment_time", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    time: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    instance: Mapped[str | None] = mapped_column(String(255), nullable=True)
    phase: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(8), default="info")
    message: Mapped[str] = mapped_column(Text)


class Attempt(Base):
    """One try of a deployment on one provider; failed tries are kept with their cause."""

    __tablename__ = "attempts"
    __table_args__ = (Index("ix_attempts_deployment", "deployment_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(64))
    #: running | succeeded | failed (and removed) | kept (failed, left for debugging) | skipped (preflight)
    #: | interrupted (its dodas was stopped or died)
    status: Mapped[str] = mapped_column(String(16))
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
