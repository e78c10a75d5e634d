"""Who is speaking: a platform account → roster person, roles and the regions they may see.

The router resolves an `Actor` for every incoming message before it reaches a handler.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.models import ADMIN, CADRE, LEADER, RESIDENT, SECRETARY, Region
from storage.repositories import UnitOfWork

UNKNOWN = "unknown"


@dataclass(frozen=True)
class Actor:
    person_id: int | None
    name: str | None
    roles: frozenset[str]
    scopes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # role -> region ids

    @property
    def known(self) -> bool:
        return self.person_id is not None

    def has(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))

    @property
    def is_admin(self) -> bool:
        return ADMIN in self.roles


ANONYMOUS = Actor(None, None, frozenset({UNKNOWN}))


def resolve(uow: UnitOfWork, platform: str, user_id: str) -> Actor:
    return actor_from_rows(uow.identities.actor_rows(platform, user_id))


def actor_from_rows(rows) -> Actor:
    """An Actor from (person id, name, role, region id) rows, one per role grant; ANONYMOUS for none."""
    if not rows:
        return ANONYMOUS
    scopes: dict[str, list[int]] = {}
    roles = set()
    for _pid, _name, role, region_id in rows:
        if role is not None:
            roles.add(role)
            if region_id is not None:
                scopes.setdefault(role, []).append(region_id)
    return Actor(rows[0][0], rows[0][1], frozenset(roles or {RESIDENT}), {k: tuple(v) for k, v in scopes.items()})


def visible_region(uow: UnitOfWork, actor: Actor, region: Region) -> bool:
    """May this actor read data of `region`? Admins all; leaders their subtree; cadres their townships."""
    if actor.is_admin:
        return True
    for role in (LEADER, CADRE, SECRETARY):
        for rid in actor.scopes.get(role, ()):
            scope = uow.regions.get(rid)
            if scope is not None and uow.regions.contains(scope, region):
                return True
    return False


def home_region(uow: UnitOfWork, actor: Actor) -> Region | None:
    """The broadest region an actor works in: a leader's scope, else a cadre's township, else a secretary's village."""
    for role in (LEADER, CADRE, SECRETARY):
        ids = actor.scopes.get(role)
        if ids:
            regions = [uow.regions.get(i) for i in ids]
            regions = [r for r in regions if r is not None]
            if regions:
                order = {"county": 0, "street": 1, "township": 1, "community": 2, "village": 2}
                return sorted(regions, key=lambda r: order.get(r.kind, 3))[0]
    return None
