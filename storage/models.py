"""SQLAlchemy 2 models: the one schema behind every repository.

Region tree (县 → 乡镇/街道 → 村/社区), people and their roles, platform identities and chats,
reports with their full history, and the tables later stages fill (questions, outbox, dedup, audit).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


class AwareDateTime(TypeDecorator):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: AwareDateTime()}


# Region kinds
COUNTY, TOWNSHIP, STREET, VILLAGE, COMMUNITY = "county", "township", "street", "village", "community"
TOWNSHIP_KINDS = (TOWNSHIP, STREET)
VILLAGE_KINDS = (VILLAGE, COMMUNITY)

# Roles
CADRE, SECRETARY, LEADER, ADMIN, RESIDENT = "cadre", "secretary", "leader", "admin", "resident"
ROLES = (CADRE, SECRETARY, LEADER, ADMIN, RESIDENT)
ROLE_NAMES = {CADRE: "包村干部", SECRETARY: "村支书", LEADER: "领导", ADMIN: "管理员", RESIDENT: "群众"}


class Region(Base):
    """A node of the region tree: county/district (区县), township/street (乡镇/街道), village/community (村/社区)."""

    __tablename__ = "regions"
    __table_args__ = (UniqueConstraint("parent_id", "name", name="uq_region_parent_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), index=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)
    robot_key: Mapped[str | None] = mapped_column(String(128))  # WeCom group robot of a township
    election_day: Mapped[date | None] = mapped_column(Date)  # a village's own 选举日 (plan override)

    parent: Mapped[Region | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Region]] = relationship(back_populates="parent")


class Person(Base):
    """Anyone the bot knows by name: 包村干部, 村支书, 领导, 管理员, residents who bound themselves."""

    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(128), unique=True)  # phone:<11 digits> or name:<name>@<region id>
    name: Mapped[str] = mapped_column(String(64), index=True)
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
    paused_until: Mapped[date | None] = mapped_column(Date)  # a cadre on leave gets no nudges

    roles: Mapped[list[RoleGrant]] = relationship(back_populates="person", cascade="all, delete-orphan")


class RoleGrant(Base):
    """A role with its scope: leader of 新营子镇, secretary of 前进村, admin (no scope)."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("person_id", "role", "region_id", name="uq_role_grant"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)

    person: Mapped[Person] = relationship(back_populates="roles")
    region: Mapped[Region | None] = relationship()


class Assignment(Base):
    """包村: a cadre is responsible for a village (many-to-many)."""

    __tablename__ = "assignments"
    __table_args__ = (UniqueConstraint("person_id", "village_id", name="uq_assignment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("regions.id"), index=True)


class PlatformIdentity(Base):
    """An account on a platform (Telegram user id, WeCom userid, OpenID) linked to a person."""

    __tablename__ = "platform_identities"
    __table_args__ = (UniqueConstraint("platform", "external_id", name="uq_identity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128))
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    username: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]


class Chat(Base):
    """A group or private chat on a platform; a group is bound to the township it serves."""

    __tablename__ = "chats"
    __table_args__ = (UniqueConstraint("platform", "chat_id", name="uq_chat"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    is_group: Mapped[bool] = mapped_column(Boolean, default=False)
    title: Mapped[str | None] = mapped_column(String(128))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("regions.id"), index=True)

    region: Mapped[Region | None] = relationship()


class Report(Base):
    """A 日报/周报 line for one village. Corrections add rows; `current` marks the one summaries use."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_village_day", "village_id", "report_date", "kind"),
        Index("ix_reports_current_day", "current", "report_date"),
        Index("ix_reports_message", "platform", "chat_id", "message_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    village_id: Mapped[int] = mapped_column(ForeignKey("regions.id"))
    report_date: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(8))  # daily | weekly
    stage: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str | None] = mapped_column(String(16))  # done | in_progress | planned
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    problems: Mapped[list[Any]] = mapped_column(default=list)
    raw_text: Mapped[str] = mapped_column(Text)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    platform: Mapped[str | None] = mapped_column(String(16))
    chat_id: Mapped[str | None] = mapped_column(String(128))
    message_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime]
    current: Mapped[bool] = mapped_column(Boolean, default=True)
    superseded_by_id: Mapped[int | None] = mapped_column(ForeignKey("reports.id"))
    withdrawn_at: Mapped[datetime | None]
    petitions_resolved: Mapped[bool] = mapped_column(Boolean, default=False)
    petitions: Mapped[int | None] = mapped_column(Integer)  # open 信访件 as of this report; 0 = resolved


class QuestionLog(Base):
    """Every policy question asked, with what the handbook answered (entry id) or nothing."""

    __tablename__ = "question_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    normalized: Mapped[str] = mapped_column(String(255), index=True)
    entry_id: Mapped[str | None] = mapped_column(String(32))
    score: Mapped[float | None]
    matched: Mapped[bool] = mapped_column(Boolean, default=False)
    platform: Mapped[str | None] = mapped_column(String(16))
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"))
    created_at: Mapped[datetime]


class Outbox(Base):
    """Every message the bot sends unprompted; the unique key makes each send happen once."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(255), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column()  # {"template":…, "values":…, "mentions":…}
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sending|sent|failed|skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    due_at: Mapped[datetime]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)


class ProcessedMessage(Base):
    """Deduplication of platform deliveries (WeChat retries, Telegram redelivery) across restarts and workers."""

    __tablename__ = "processed_messages"
    __table_args__ = (UniqueConstraint("platform", "dedup_key", name="uq_processed"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    dedup_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]


class Conversation(Base):
    """State of a multi-step exchange (guided /report, an open village choice) per chat and user."""

    __tablename__ = "conversations"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "user_id", name="uq_conversation"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    state: Mapped[dict[str, Any]] = mapped_column()
    updated_at: Mapped[datetime]


class BindCode(Base):
    """One-time code an admin issues so a person can link a platform account (`/bind 123456`)."""

    __tablename__ = "bind_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class AuditLog(Base):
    """Who did which admin action when (roster import, plan change, binding)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
