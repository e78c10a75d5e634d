"""Architecture rules: only bot/platforms imports a platform SDK; every route is in /help and survives empty input."""

import ast
from pathlib import Path

import pytest

from bot.identity import Actor
from bot.messages import ChatRef, Incoming, UserRef
from handlers import build_router
from storage.models import ROLES

ROOT = Path(__file__).resolve().parent.parent
PLATFORM_SDKS = ("telegram", "wechatpy")


@pytest.mark.parametrize("package", ["handlers", "reminders", "content", "storage", "bot"])
def test_no_platform_sdk_imports(package):
    """Only the adapters in bot/platforms import python-telegram-bot or wechatpy."""
    offenders = []
    for path in (ROOT / package).rglob("*.py"):
        if path.relative_to(ROOT).parts[:2] == ("bot", "platforms"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in PLATFORM_SDKS]
    assert offenders == []


ROUTES = build_router().routes


@pytest.mark.parametrize("route", [r for r in ROUTES if not r.hidden], ids=lambda r: r.command)
def test_every_route_is_in_help_for_its_roles(route):
    router = build_router()
    actor = Actor(1, "x", frozenset(route.roles & set(ROLES)) or frozenset(route.roles))
    assert route in router.visible_routes(actor)
    assert route.help, f"/{route.command} needs a help line"


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: r.command)
async def test_every_route_survives_empty_input(route, deps):
    for chat in (ChatRef("console", "新营子镇换届工作群", True), ChatRef("console", "private:黄志远", False)):
        msg = Incoming(chat=chat, sender=UserRef("黄志远"), text=f"/{route.command}", message_id="1")
        with deps.uow() as uow:
            person = uow.persons.by_name("黄志远")[0]
            uow.identities.link("console", "黄志远", person, deps.clock.now())
            uow.commit()
        replies = await deps.router.dispatch(msg, deps)
        for reply in replies:
            assert deps.renderer.render(reply).strip()
