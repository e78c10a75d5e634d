"""Repositories: the queries the handlers need, grouped by aggregate. They never commit.

`UnitOfWork` bundles them around one session; `uow.commit()` is the caller's decision.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    bindparam,
    cast,
    delete,
    exists,
    func,
    literal,
    null,
    select,
    union,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from storage.models import (
    SECRETARY,
    TOWNSHIP_KINDS,
    VILLAGE_KINDS,
    Assignment,
    AuditLog,
    BindCode,
    Chat,
    Conversation,
    Outbox,
    Person,
    PlatformIdentity,
    ProcessedMessage,
    QuestionLog,
    Region,
    Report,
    RoleGrant,
)

# Statements that run for every incoming message, built once: constructing a SQLAlchemy statement costs more
# than running it on SQLite, and a prebuilt one also keeps its cache key.
_SENDER = (select(PlatformIdentity.person_id)
           .where(PlatformIdentity.platform == bindparam("platform"), PlatformIdentity.external_id == bindparam("external_id"))
           .scalar_subquery())


def _reportable_ids(person):
    """Villages a person may report for: assigned as cadre, or their own as secretary (the one place of the rule)."""
    return union(
        select(Assignment.village_id.label("village_id")).where(Assignment.person_id == person),
        select(RoleGrant.region_id).where(RoleGrant.person_id == person, RoleGrant.role == SECRETARY,
                                          RoleGrant.region_id.is_not(None)),
    )


# (person id, name, role, region id) of the sender, one row per role grant (role None without grants)
_ACTOR_ROWS = (select(Person.id, Person.name, RoleGrant.role, RoleGrant.region_id)
               .outerjoin(RoleGrant, RoleGrant.person_id == Person.id).where(Person.id == _SENDER))
_REPORTABLE = _reportable_ids(bindparam("person_id"))
_SENDER_REPORTABLE = _reportable_ids(_SENDER).subquery()
# Everything a report needs about its sender and chat in one round trip, the kind of row in the last column:
# _ACTOR_ROWS + "role", (reportable village id, …, "village"), (…, bound region name, …, "chat") and
# (report id, …, "stored") when this very message was stored before (a platform's redelivery).
_REPORTER_CONTEXT = union_all(
    _ACTOR_ROWS.add_columns(literal("role")),
    select(_SENDER_REPORTABLE.c.village_id, cast(null(), String), cast(null(), String), cast(null(), Integer),
           literal("village")),
    select(cast(null(), Integer), Region.name, cast(null(), String), cast(null(), Integer), literal("chat"))
    .join(Chat, Chat.region_id == Region.id)
    .where(Chat.platform == bindparam("platform"), Chat.chat_id == bindparam("chat_id")),
    select(Report.id, cast(null(), String), cast(null(), String), cast(null(), Integer), literal("stored"))
    .where(Report.platform == bindparam("platform"), Report.chat_id == bindparam("chat_id"),
           Report.message_id == bindparam("message_id"), Report.current.is_(True)),
)
_ENQUEUE = {
    name: dialect_insert(Outbox.__table__).on_conflict_do_nothing(index_elements=["key"]).returning(Outbox.__table__.c.key)
    for name, dialect_insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}
_CONVERSATION = select(Conversation).where(
    Conversation.platform == bindparam("platform"), Conversation.chat_id == bindparam("chat_id"),
    Conversation.user_id == bindparam("user_id"))
_SUPERSEDE = (
    update(Report.__table__).where(Report.village_id == bindparam("b_village"), Report.report_date == bindparam("b_date"),
                         Report.kind == bindparam("b_kind"), Report.current.is_(True), Report.id != bindparam("b_id"))
    .values(current=False, superseded_by_id=bindparam("b_new_id"))
)  # a Core statement on the session's connection: reports in the session are not refreshed (none are read after)
_BY_MESSAGE = select(Report).where(
    Report.platform == bindparam("platform"), Report.chat_id == bindparam("chat_id"),
    Report.message_id == bindparam("message_id"), Report.current.is_(True))



class RegionRepo:
    def __init__(self, s: Session):
        self.s = s

    def get(self, region_id: int) -> Region | None:
        return self.s.get(Region, region_id)

    def child(self, parent_id: int | None, name: str) -> Region | None:
        cond = Region.parent_id.is_(None) if parent_id is None else Region.parent_id == parent_id
        return self.s.scalar(select(Region).where(cond, Region.name == name))

    def ensure(self, parent_id: int | None, name: str, kind: str) -> Region:
        region = self.child(parent_id, name)
        if region is None:
            region = Region(parent_id=parent_id, name=name, kind=kind)
            self.s.add(region)
            self.s.flush()
        elif region.kind != kind:
            region.kind = kind
        return region

    def by_name(self, name: str, kinds: Iterable[str] | None = None) -> list[Region]:
        q = select(Region).where(Region.name == name)
        if kinds:
            q = q.where(Region.kind.in_(tuple(kinds)))
        return list(self.s.scalars(q.order_by(Region.id)))

    def find(self, name: str) -> list[Region]:
        """Regions whose name is `name`, or `name` plus a usual suffix (新营子 → 新营子镇)."""
        names = [name] + [name + suf for suf in ("镇", "乡", "街道", "村", "社区", "县", "区")]
        return list(self.s.scalars(select(Region).where(Region.name.in_(names)).order_by(Region.id)))

    def roots(self) -> list[Region]:
        return list(self.s.scalars(select(Region).where(Region.parent_id.is_(None)).order_by(Region.id)))

    def children(self, region_id: int) -> list[Region]:
        return list(self.s.scalars(select(Region).where(Region.parent_id == region_id).order_by(Region.id)))

    def townships(self, county_id: int | None = None) -> list[Region]:
        q = select(Region).where(Region.kind.in_(TOWNSHIP_KINDS))
        if county_id is not None:
            q = q.where(Region.parent_id == county_id)
        return list(self.s.scalars(q.order_by(Region.id)))

    def villages(self, township_id: int | None = None) -> list[Region]:
        q = select(Region).where(Region.kind.in_(VILLAGE_KINDS))
        if township_id is not None:
            q = q.where(Region.parent_id == township_id)
        return list(self.s.scalars(q.order_by(Region.id)))

    def village_ids_under(self, region: Region) -> list[int]:
        """Ids of the villages in a region's subtree (the region itself if it is a village)."""
        if region.kind in VILLAGE_KINDS:
            return [region.id]
        if region.kind in TOWNSHIP_KINDS:
            return list(self.s.scalars(select(Region.id).where(Region.parent_id == region.id, Region.kind.in_(VILLAGE_KINDS))))
        town = aliased(Region)
        return list(
            self.s.scalars(
                select(Region.id)
                .join(town, Region.parent_id == town.id)
                .where(town.parent_id == region.id, Region.kind.in_(VILLAGE_KINDS))
            )
        )

    def all_villages_with_township(self) -> list[tuple[int, str, int, str]]:
        town = aliased(Region)
        rows = self.s.execute(
            select(Region.id, Region.name, town.id, town.name)
            .join(town, Region.parent_id == town.id)
            .where(Region.kind.in_(VILLAGE_KINDS))
            .order_by(Region.id)
        )
        return [tuple(r) for r in rows]

    def township_of(self, region: Region) -> Region | None:
        if region.kind in TOWNSHIP_KINDS:
            return region
        if region.kind in VILLAGE_KINDS and region.parent_id:
            return self.s.get(Region, region.parent_id)
        return None

    def contains(self, ancestor: Region, region: Region) -> bool:
        node: Region | None = region
        while node is not None:
            if node.id == ancestor.id:
                return True
            node = self.s.get(Region, node.parent_id) if node.parent_id else None
        return False


class PersonRepo:
    def __init__(self, s: Session):
        self.s = s

    def get(self, person_id: int) -> Person | None:
        return self.s.get(Person, person_id)

    def by_key(self, key: str) -> Person | None:
        return self.s.scalar(select(Person).where(Person.key == key))

    def by_name(self, name: str) -> list[Person]:
        return list(self.s.scalars(select(Person).where(Person.name == name).order_by(Person.id)))

    def by_phone(self, phone: str) -> Person | None:
        return self.s.scalar(select(Person).where(Person.phone == phone))

    def ensure(self, key: str, name: str, phone: str | None = None) -> Person:
        person = self.by_key(key)
        if person is None:
            person = Person(key=key, name=name, phone=phone)
            self.s.add(person)
            self.s.flush()
        else:
            person.name = name
            if phone:
                person.phone = phone
        return person

    def grant(self, person: Person, role: str, region_id: int | None = None) -> None:
        found = self.s.scalar(
            select(RoleGrant).where(
                RoleGrant.person_id == person.id,
                RoleGrant.role == role,
                RoleGrant.region_id.is_(None) if region_id is None else RoleGrant.region_id == region_id,
            )
        )
        if found is None:
            self.s.add(RoleGrant(person_id=person.id, role=role, region_id=region_id))
            self.s.flush()

    def grants(self, person_id: int) -> list[RoleGrant]:
        return list(self.s.scalars(select(RoleGrant).where(RoleGrant.person_id == person_id)))

    def revoke_role(self, role: str, region_id: int) -> None:
        self.s.execute(delete(RoleGrant).where(RoleGrant.role == role, RoleGrant.region_id == region_id))

    def assign(self, person: Person, village: Region) -> None:
        if not self.s.scalar(
            select(exists().where(Assignment.person_id == person.id, Assignment.village_id == village.id))
        ):
            self.s.add(Assignment(person_id=person.id, village_id=village.id))

    def unassign_village(self, village_id: int, keep_person_id: int | None = None) -> None:
        q = delete(Assignment).where(Assignment.village_id == village_id)
        if keep_person_id is not None:
            q = q.where(Assignment.person_id != keep_person_id)
        self.s.execute(q)

    def assigned_villages(self, person_id: int) -> list[Region]:
        return list(
            self.s.scalars(
                select(Region)
                .join(Assignment, Assignment.village_id == Region.id)
                .where(Assignment.person_id == person_id)
                .order_by(Region.id)
            )
        )

    def reportable_village_ids(self, person_id: int) -> set[int]:
        """Villages a person may report for: assigned as cadre, or their own as secretary."""
        return set(self.s.scalars(_REPORTABLE, {"person_id": person_id}))

    def cadres_of(self, village_id: int) -> list[Person]:
        return list(
            self.s.scalars(
                select(Person).join(Assignment, Assignment.person_id == Person.id).where(Assignment.village_id == village_id)
            )
        )

    def with_role(self, role: str, region_id: int | None = None) -> list[Person]:
        q = select(Person).join(RoleGrant, RoleGrant.person_id == Person.id).where(RoleGrant.role == role)
        if region_id is not None:
            q = q.where(RoleGrant.region_id == region_id)
        return list(self.s.scalars(q.order_by(Person.id)).unique())

    def count(self) -> int:
        return self.s.scalar(select(func.count()).select_from(Person)) or 0


class IdentityRepo:
    def __init__(self, s: Session):
        self.s = s

    def actor_rows(self, platform: str, external_id: str) -> list[tuple[int, str, str | None, int | None]]:
        """(person id, name, role, region id) of the person behind an account, one row per role grant (role
        None without grants); empty for an unknown account. One statement: it runs for every message."""
        return [tuple(row) for row in self.s.execute(_ACTOR_ROWS, {"platform": platform, "external_id": external_id})]

    def reporter_context(self, platform: str, external_id: str, chat_id: str, message_id: str | None = None):
        """(actor rows as in `actor_rows`, the villages the person may report for, name of the region the chat
        is bound to, whether current reports from `message_id` are stored already) in one statement: it runs
        for every group message."""
        actor, reportable, region, stored = [], set(), None, False
        rows = self.s.execute(_REPORTER_CONTEXT, {"platform": platform, "external_id": external_id, "chat_id": chat_id,
                                                  "message_id": message_id})
        for number, name, role, region_id, kind in rows:
            if kind == "role":
                actor.append((number, name, role, region_id))
            elif kind == "village":
                reportable.add(number)
            elif kind == "chat":
                region = name
            else:
                stored = True
        return actor, reportable, region, stored

    def person_for(self, platform: str, external_id: str) -> Person | None:
        return self.s.scalar(
            select(Person)
            .join(PlatformIdentity, PlatformIdentity.person_id == Person.id)
            .where(PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id)
        )

    def link(self, platform: str, external_id: str, person: Person, now: datetime, username: str | None = None) -> None:
        found = self.s.scalar(
            select(PlatformIdentity).where(
                PlatformIdentity.platform == platform, PlatformIdentity.external_id == external_id
            )
        )
        if found is None:
            self.s.add(
                PlatformIdentity(
                    platform=platform, external_id=external_id, person_id=person.id, username=username, created_at=now
                )
            )
        else:
            found.person_id = person.id
            found.username = username or found.username
        self.s.flush()

    def of_person(self, person_id: int, platform: str | None = None) -> list[PlatformIdentity]:
        q = select(PlatformIdentity).where(PlatformIdentity.person_id == person_id)
        if platform:
            q = q.where(PlatformIdentity.platform == platform)
        return list(self.s.scalars(q))

    def issue_code(self, person: Person, now: datetime, ttl: timedelta = timedelta(days=3)) -> str:
        while True:
            code = f"{secrets.randbelow(10**6):06d}"
            if not self.s.scalar(select(exists().where(BindCode.code == code, BindCode.used_at.is_(None)))):
                break
        self.s.execute(delete(BindCode).where(BindCode.code == code))
        self.s.add(BindCode(code=code, person_id=person.id, expires_at=now + ttl))
        self.s.flush()
        return code

    def redeem_code(self, code: str, now: datetime) -> Person | None:
        bc = self.s.scalar(select(BindCode).where(BindCode.code == code, BindCode.used_at.is_(None)))
        if bc is None or bc.expires_at < now:
            return None
        bc.used_at = now
        return self.s.get(Person, bc.person_id)


class ChatRepo:
    def __init__(self, s: Session):
        self.s = s

    def get(self, platform: str, chat_id: str) -> Chat | None:
        return self.s.scalar(select(Chat).where(Chat.platform == platform, Chat.chat_id == chat_id))

    def ensure(self, platform: str, chat_id: str, is_group: bool, title: str | None = None) -> Chat:
        chat = self.get(platform, chat_id)
        if chat is None:
            chat = Chat(platform=platform, chat_id=chat_id, is_group=is_group, title=title)
            self.s.add(chat)
            self.s.flush()
        elif title and chat.title != title:
            chat.title = title
        return chat

    def groups_of(self, region_id: int, platform: str | None = None) -> list[Chat]:
        q = select(Chat).where(Chat.region_id == region_id, Chat.is_group.is_(True))
        if platform:
            q = q.where(Chat.platform == platform)
        return list(self.s.scalars(q.order_by(Chat.id)))

    def bound_groups(self) -> list[Chat]:
        return list(self.s.scalars(select(Chat).where(Chat.region_id.is_not(None), Chat.is_group.is_(True))))


class ReportRepo:
    def __init__(self, s: Session):
        self.s = s

    def add(self, report: Report) -> Report:
        """Store a report; an earlier current report for the same village, date and kind is superseded."""
        self.store(report)
        return report

    def store(self, report: Report) -> bool:
        """`add`, returning True when the report superseded an earlier one of the same village, date and kind."""
        self.s.add(report)
        self.s.flush()
        result = self.s.connection().execute(_SUPERSEDE, {"b_village": report.village_id, "b_date": report.report_date,
                                              "b_kind": report.kind, "b_id": report.id, "b_new_id": report.id})
        return bool(result.rowcount)

    def by_message(self, platform: str, chat_id: str, message_id: str) -> list[Report]:
        return list(self.s.scalars(_BY_MESSAGE, {"platform": platform, "chat_id": chat_id, "message_id": message_id}))

    def last_by_author(self, author_id: int) -> list[Report]:
        """The author's most recent current reports (all those from the same message)."""
        last = self.s.scalar(
            select(Report).where(Report.author_id == author_id, Report.current.is_(True)).order_by(Report.id.desc()).limit(1)
        )
        if last is None:
            return []
        if last.message_id:
            return [r for r in self.by_message(last.platform or "", last.chat_id or "", last.message_id) if r.author_id == author_id]
        return [last]

    def withdraw(self, report: Report, now: datetime) -> Report | None:
        """Withdraw a current report; the one it superseded (if still the latest) becomes current again."""
        report.current = False
        report.withdrawn_at = now
        prev = self.s.scalar(
            select(Report)
            .where(Report.superseded_by_id == report.id, Report.withdrawn_at.is_(None))
            .order_by(Report.id.desc())
            .limit(1)
        )
        if prev is not None:
            prev.current = True
            prev.superseded_by_id = None
        return prev

    def history(self, village_id: int, limit: int = 50) -> list[Report]:
        return list(
            self.s.scalars(
                select(Report)
                .where(Report.village_id == village_id)
                .order_by(Report.report_date.desc(), Report.id.desc())
                .limit(limit)
            )
        )

    def current_for(self, village_id: int) -> list[Report]:
        return list(
            self.s.scalars(
                select(Report)
                .where(Report.village_id == village_id, Report.current.is_(True))
                .order_by(Report.report_date, Report.id)
            )
        )

    def reported_village_ids(self, village_ids: Sequence[int] | None, day: date, kind: str = "daily") -> set[int]:
        q = select(Report.village_id).where(Report.current.is_(True), Report.report_date == day, Report.kind == kind)
        if village_ids is not None:
            q = q.where(Report.village_id.in_(village_ids))
        return set(self.s.scalars(q.distinct()))

    def count(self) -> int:
        return self.s.scalar(select(func.count()).select_from(Report)) or 0


class ConversationRepo:
    def __init__(self, s: Session):
        self.s = s

    def get(self, platform: str, chat_id: str, user_id: str) -> Conversation | None:
        return self.s.scalar(_CONVERSATION, {"platform": platform, "chat_id": chat_id, "user_id": user_id})

    def set(self, platform: str, chat_id: str, user_id: str, state: dict[str, Any], now: datetime) -> None:
        conv = self.get(platform, chat_id, user_id)
        if conv is None:
            self.s.add(Conversation(platform=platform, chat_id=chat_id, user_id=user_id, state=state, updated_at=now))
        else:
            conv.state = state
            conv.updated_at = now
        self.s.flush()

    def clear(self, platform: str, chat_id: str, user_id: str) -> None:
        self.s.execute(
            delete(Conversation).where(
                Conversation.platform == platform, Conversation.chat_id == chat_id, Conversation.user_id == user_id
            )
        )


class OutboxRepo:
    def __init__(self, s: Session):
        self.s = s

    def enqueue(self, key: str, platform: str, target: str, payload: dict[str, Any], due_at: datetime, now: datetime) -> bool:
        """Insert unless the key exists. Returns True when this call created the row (exactly-once)."""
        return self.enqueue_many([{"key": key, "platform": platform, "target": target, "payload": payload,
                                   "due_at": due_at, "created_at": now}]) == 1

    def enqueue_many(self, rows: Sequence[dict[str, Any]], chunk: int = 2000) -> int:
        """Insert messages (dicts of key, platform, target, payload, due_at, created_at), skipping keys that
        exist: INSERT … ON CONFLICT DO NOTHING RETURNING, one statement executed for many rows. Returns how
        many rows this call added."""
        stmt = _ENQUEUE[self.s.bind.dialect.name]  # type: ignore[union-attr]
        unique = list({r["key"]: r for r in rows}.values())
        conn = self.s.connection()
        return sum(len(conn.execute(stmt, unique[start:start + chunk]).all()) for start in range(0, len(unique), chunk))

    def due(self, now: datetime, limit: int = 100, platforms: Iterable[str] | None = None) -> list[Outbox]:
        q = select(Outbox).where(Outbox.status == "pending", Outbox.due_at <= now)
        if platforms is not None:
            q = q.where(Outbox.platform.in_(tuple(platforms)))
        q = q.order_by(Outbox.due_at, Outbox.id).limit(limit)
        if self.s.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
            q = q.with_for_update(skip_locked=True)
        return list(self.s.scalars(q))

    def claim(self, row_id: int, now: datetime) -> bool:
        """Mark a pending row as being sent; False if another worker took it."""
        res = self.s.execute(
            update(Outbox).where(Outbox.id == row_id, Outbox.status == "pending").values(status="sending", attempts=Outbox.attempts + 1)
        )
        return res.rowcount == 1

    def by_key(self, key: str) -> Outbox | None:
        return self.s.scalar(select(Outbox).where(Outbox.key == key))

    def count(self, status: str | None = None) -> int:
        q = select(func.count()).select_from(Outbox)
        if status:
            q = q.where(Outbox.status == status)
        return self.s.scalar(q) or 0


class QuestionRepo:
    def __init__(self, s: Session):
        self.s = s

    def log(self, q: QuestionLog) -> None:
        self.s.add(q)

    def unanswered(self, limit: int = 30) -> list[tuple[str, int]]:
        rows = self.s.execute(
            select(QuestionLog.normalized, func.count())
            .where(QuestionLog.matched.is_(False))
            .group_by(QuestionLog.normalized)
            .order_by(func.count().desc(), QuestionLog.normalized)
            .limit(limit)
        )
        return [(r[0], r[1]) for r in rows]


class DedupRepo:
    def __init__(self, s: Session):
        self.s = s

    def first_time(self, platform: str, key: str, now: datetime) -> bool:
        """Record a delivery key; False when it was seen before (a retry or a duplicate delivery)."""
        try:
            with self.s.begin_nested():
                self.s.add(ProcessedMessage(platform=platform, dedup_key=key[:255], created_at=now))
        except IntegrityError:
            return False
        return True


class AuditRepo:
    def __init__(self, s: Session):
        self.s = s

    def record(self, actor: str, action: str, detail: str | None, now: datetime) -> None:
        self.s.add(AuditLog(actor=actor, action=action, detail=detail, at=now))

    def recent(self, limit: int = 50) -> list[AuditLog]:
        return list(self.s.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit)))


class UnitOfWork:
    def __init__(self, session: Session):
        self.session = session
        self.regions = RegionRepo(session)
        self.persons = PersonRepo(session)
        self.identities = IdentityRepo(session)
        self.chats = ChatRepo(session)
        self.reports = ReportRepo(session)
        self.conversations = ConversationRepo(session)
        self.outbox = OutboxRepo(session)
        self.questions = QuestionRepo(session)
        self.dedup = DedupRepo(session)
        self.audit = AuditRepo(session)

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()



