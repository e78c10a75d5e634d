"""The fictional demo county (青山县): roster, console groups bound to each township, an admin."""

from __future__ import annotations

from pathlib import Path

from storage.models import ADMIN
from storage.roster import import_roster

DEMO_ROSTER = Path(__file__).resolve().parent.parent / "content" / "roster" / "demo_roster.csv"
DEMO_ADMIN = "黄志远"


def load_demo(deps) -> str:
    now = deps.clock.now()
    with deps.uow() as uow:
        summary = import_roster(uow, DEMO_ROSTER, "demo", now)
        for person in uow.persons.by_name(DEMO_ADMIN):
            uow.persons.grant(person, ADMIN)
        for town in uow.regions.townships():
            chat = uow.chats.ensure("console", f"{town.name}换届工作群", True, f"{town.name}换届工作群")
            chat.region_id = town.id
        uow.commit()
    deps.roster_changed()
    return (
        f"已载入示范名单：{summary.townships}个乡镇(街道)、{summary.villages}个村(社区)、{summary.people}人；"
        f"控制台群“新营子镇换届工作群”等已绑定，{DEMO_ADMIN}为管理员。\n"
        "试一试：/as 张三 → /group 新营子镇换届工作群 → 发送“前进村 选民登记已完成，登记选民1236人，无问题”；"
        "/as 黄志远 后发送 /digest 看日报汇总；直接发送“户口不在村里能投票吗”问政策。"
    )
