"""Shared fixtures: a migrated database on SQLite and (when configured) PostgreSQL, Deps with a
FakeClock, the demo roster, and `talk()` — speak as a person in a chat and get the bot's replies."""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from bot.app import Deps, build_deps
from bot.clock import FakeClock
from bot.settings import Settings
from storage.db import Database

TZ = ZoneInfo("Asia/Shanghai")
PG_URL = os.environ.get("HUANJIE_TEST_POSTGRES_URL", "")
DB_KINDS = ["sqlite", "postgresql"]


def _pg_url() -> str:
    url = PG_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


@pytest.fixture(scope="session")
def pg_database():
    """A throw-away PostgreSQL database for this test session (fails, not skips, when configured but down)."""
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set HUANJIE_TEST_POSTGRES_URL to run storage tests on it")
    admin = create_engine(_pg_url(), isolation_level="AUTOCOMMIT")
    name = f"huanjie_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = _pg_url().rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh_pg(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=DB_KINDS)
def db_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'huanjie.db'}"
    url = request.getfixturevalue("pg_database")
    _fresh_pg(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'huanjie.db'}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 11, 23, 9, 0, tzinfo=TZ))


def make_deps(url: str, clock: FakeClock, **settings) -> Deps:
    db = Database(url)
    db.upgrade()
    return build_deps(Settings(database_url=url, **settings), clock=clock, db=db)


@pytest.fixture
def db(db_url) -> Database:
    database = Database(db_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def empty_deps(sqlite_url, clock) -> Deps:
    deps = make_deps(sqlite_url, clock)
    yield deps
    deps.db.dispose()


@pytest.fixture
def deps(sqlite_url, clock) -> Deps:
    """SQLite deps with the demo county loaded."""
    from bot.demo import load_demo

    d = make_deps(sqlite_url, clock)
    load_demo(d)
    yield d
    d.db.dispose()


@pytest.fixture
def any_deps(db_url, clock) -> Deps:
    """Demo deps on each database kind."""
    from bot.demo import load_demo

    d = make_deps(db_url, clock)
    load_demo(d)
    yield d
    d.db.dispose()


async def talk(deps: Deps, as_: str, say: str, in_: str | None = None) -> list[str]:
    """Say `say` as roster person `as_` in group `in_` (None = private chat); return the bot's replies."""
    import io

    from bot.platforms.console import ConsoleSession

    session = ConsoleSession(deps, out=io.StringIO())
    await session.handle_line(f"/as {as_}")
    if in_:
        await session.handle_line(f"/group {in_}")
    return await session.handle_line(say)


@pytest.fixture(scope="session")
def real_engine():
    """The Q&A engine over the real handbook (content/handbook), built once for every test module."""
    from content.handbook import Handbook, QAEngine

    return QAEngine(Handbook.load())
