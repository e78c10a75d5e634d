"""Plain-text view of the region tree with each village's cadre (`huanjie roster show`)."""

from __future__ import annotations

from storage.models import LEADER, SECRETARY


def roster_tree(deps, region_name: str | None = None) -> str:
    lines: list[str] = []
    with deps.uow() as uow:
        if region_name:
            roots = uow.regions.find(region_name)
            if not roots:
                return f"找不到“{region_name}”"
        else:
            roots = uow.regions.roots()
        if not roots:
            return "名单为空：请先 huanjie roster import 名单文件"

        def walk(region, depth: int) -> None:
            pad = "  " * depth
            if region.kind in ("village", "community"):
                cadres = "、".join(p.name for p in uow.persons.cadres_of(region.id)) or "无"
                secs = "、".join(p.name for p in uow.persons.with_role(SECRETARY, region.id))
                lines.append(f"{pad}{region.name}  包村干部:{cadres}" + (f"  村支书:{secs}" if secs else ""))
                return
            leaders = "、".join(p.name for p in uow.persons.with_role(LEADER, region.id))
            kids = uow.regions.children(region.id)
            lines.append(f"{pad}{region.name}" + (f"  联系领导:{leaders}" if leaders else "") + (f"  ({len(kids)})" if kids else ""))
            for child in kids:
                walk(child, depth + 1)

        for root in roots:
            walk(root, 0)
    return "\n".join(lines)
