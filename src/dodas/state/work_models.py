"""The server's tables: the work queue and who may see each deployment.

Kept apart from models.py because the command-line tool never writes them: a
deployment made with `dodas up` on one's own machine has no owner row and no
queued work. The server records what a caller wants as a work item; workers
(server/workers.py) lease items from the database, so the work outlives the
process that accepted the request.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, DateTime, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dodas.state.models import Base, utcnow


class WorkItem(Base):
    """One operation wanted on one deployment: apply, scale or destroy.

    queued -> running (leased: `leased_by` heart-beats `lease_expires_at` forward)
    -> done | failed. A running item whose lease expired belongs to a worker that
    died or froze: any worker may lease it again, and the engine's reconciliation
    resumes the deployment from its recorded per-instance states."""

    __tablename__ = "work_items"
    __table_args__ = (Index("ix_work_status", "status", "id"), Index("ix_work_deployment", "deployment_name", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_name: Mapped[str] = mapped_column(String(128))
    operation: Mapped[str] = mapped_column(String(16))
    #: what the worker needs: the template text, inputs, options (never credentials)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    requested_by: Mapped[str] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: how many times a worker leased it (more than one: taken over from a dead worker)
    leases: Mapped[int] = mapped_column(Integer, default=0)
    #: the worker holding it, or that last held it ("host:pid:start#thread")
    leased_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class DeploymentAccess(Base):
    """Who owns a deployment made through the server, and which group shares it.
    Keyed by name: the record exists from the request on, before any worker made
    the deployment row, so that the name is taken and its owner known at once."""

    __tablename__ = "deployment_access"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    #: the identity's key (issuer + subject)
    owner: Mapped[str] = mapped_column(String(512), index=True)
    owner_name: Mapped[str] = mapped_column(String(255))
    group: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Autoscaler(Base):
    """An elastic deployment's autoscaler: which process runs its loop (a lease,
    as for work items: several server processes, exactly one scales it; a dead
    one's lease expires and another resumes from `memory`), and what the loop
    remembers between polls (dodas.elastic.decide.Memory as JSON)."""

    __tablename__ = "autoscalers"

    deployment_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    memory: Mapped[dict] = mapped_column(JSON, default=dict)
    #: the last decision's sentence (a new one is an event; the same one again is not)
    last_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    leased_by: Mapped[str | None] = mapped_column(String(255), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    polled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
