"""Database access: engine set-up, migrations and the unit of work handlers use.

`Database(url)` owns the engine; `db.uow()` opens a transaction whose repositories never commit:
the caller does (`with db.uow() as uow: ...; uow.commit()`), so a failure writes nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from storage.repositories import UnitOfWork

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseUnavailable(Exception):
    """The database cannot be reached; the message is safe to show (no password)."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    # application_name lets operators (and the takeover test) see which process holds the scheduler lock
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20,
                         connect_args={"application_name": f"huanjie-{os.getpid()}"})


def _mark_written(session, _flush_context) -> None:
    session.info["wrote"] = True


def _mark_clean(session) -> None:
    session.info.pop("wrote", None)


class Database:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._shared: ContextVar[UnitOfWork | None] = ContextVar(f"huanjie_uow_{id(self)}", default=None)
        event.listen(self._sessions, "after_flush", _mark_written)
        event.listen(self._sessions, "after_commit", _mark_clean)
        event.listen(self._sessions, "after_rollback", _mark_clean)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def safe_url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def check(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise DatabaseUnavailable(f"数据库连接失败 / database unreachable: {self.safe_url}") from exc

    def upgrade(self) -> None:
        """Apply Alembic migrations up to head."""
        from alembic import command

        command.upgrade(alembic_config(self.url), "head")

    def is_current(self) -> bool:
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() == head

    def has_tables(self) -> bool:
        return inspect(self.engine).has_table("regions")

    def session(self) -> Session:
        return self._sessions()

    @contextmanager
    def uow(self) -> Iterator[UnitOfWork]:
        """A unit of work: what the block writes is kept only if it commits. Inside `shared()` every block
        reuses the one session of the message being handled (a connection and transaction per message,
        not per block); a block that wrote without committing, or failed, is rolled back as before."""
        shared = self._shared.get()
        if shared is not None:
            try:
                yield shared
            except BaseException:
                shared.rollback()
                raise
            session = shared.session
            if session.new or session.dirty or session.deleted or session.info.get("wrote"):
                session.rollback()
            return
        session = self._sessions()
        uow = UnitOfWork(session)
        try:
            yield uow
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()  # ends any open transaction; loaded objects stay readable

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Let every `uow()` block in this task (one incoming message) share one session."""
        if self._shared.get() is not None:
            yield
            return
        session = self._sessions()
        token = self._shared.set(UnitOfWork(session))
        try:
            yield
        finally:
            self._shared.reset(token)
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str):
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg
