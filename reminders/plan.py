"""The 换届 plan: ordered stages with deadlines, overridable per township and per village.

Loaded from YAML under content/plans/; a bad plan (unknown stage, a date that is not a date, deadlines
out of stage order) is rejected with the line and reason, and the caller keeps the previous plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

PLANS_DIR = Path(__file__).resolve().parent.parent / "content" / "plans"
DEFAULT_PLAN = PLANS_DIR / "default.yaml"
STAGE_CODES = (
    "survey", "party_nomination", "qualification_review", "party_election", "election_committee",
    "voter_registration", "candidate_nomination", "voting", "supervision_committee", "handover",
)
STATUS_NAMES = {"done": "已完成", "in_progress": "进行中", "planned": "计划中"}


class PlanError(Exception):
    """The plan file is wrong; the message names the line and the reason."""


@dataclass(frozen=True)
class Stage:
    code: str
    name: str
    deadline: date
    group: str = ""


@dataclass
class Plan:
    name: str
    stages: list[Stage]
    moves_from: str = "election_committee"
    township_overrides: dict[str, dict[str, date]] = field(default_factory=dict)
    village_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = ""

    @property
    def codes(self) -> list[str]:
        return [s.code for s in self.stages]

    def name_of(self, code: str | None) -> str:
        for s in self.stages:
            if s.code == code:
                return s.name
        return code or ""

    def index(self, code: str | None) -> int:
        try:
            return self.codes.index(code)  # type: ignore[arg-type]
        except ValueError:
            return -1

    def deadlines(self, township: str | None = None, village: str | None = None,
                  election_day: date | None = None) -> dict[str, date]:
        """Effective deadlines for a region: plan, then township override, then village override / 选举日."""
        result = {s.code: s.deadline for s in self.stages}
        if township and township in self.township_overrides:
            result.update(self.township_overrides[township])
        vkeys = [k for k in (f"{township}/{village}" if township and village else None, village) if k]
        override: dict[str, Any] = {}
        for key in vkeys:
            if key in self.village_overrides:
                override = self.village_overrides[key]
                break
        day = override.get("election_day") or election_day
        if day:
            delta = day - result["voting"]
            start = self.index(self.moves_from)
            if start < 0:
                start = self.index("voting")
            previous: date | None = None
            for i, code in enumerate(self.codes):
                if i >= start >= 0:
                    moved = result[code] + delta
                    result[code] = max(moved, previous) if previous else moved
                previous = result[code]
            result["voting"] = day
        result.update({k: v for k, v in override.items() if k in result})
        return result


def _date(value: Any, where: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise PlanError(f"{where}: “{value}”不是日期(应为 YYYY-MM-DD)") from None


def _line_of(text: str, needle: str) -> int:
    for no, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return no
    return 0


def load_plan(path: Path | str = DEFAULT_PLAN) -> Plan:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlanError(f"{path}: 无法读取({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise PlanError(f"{path.name} 第{(mark.line + 1) if mark else '?'}行: YAML 格式错误") from None
    if not isinstance(data, dict) or not isinstance(data.get("stages"), list):
        raise PlanError(f"{path.name}: 缺少 stages 列表")
    stages: list[Stage] = []
    for item in data["stages"]:
        code = str(item.get("code", "")) if isinstance(item, dict) else ""
        line = _line_of(text, code) if code else 0
        where = f"{path.name} 第{line}行"
        if code not in STAGE_CODES:
            raise PlanError(f"{where}: 未知阶段“{code}”(可用: {', '.join(STAGE_CODES)})")
        if any(s.code == code for s in stages):
            raise PlanError(f"{where}: 阶段“{code}”重复")
        deadline = _date(item.get("deadline"), where)
        if stages and deadline < stages[-1].deadline:
            raise PlanError(f"{where}: {code} 的时限 {deadline} 早于上一阶段 {stages[-1].code} 的 {stages[-1].deadline}，阶段顺序不对")
        stages.append(Stage(code, str(item.get("name") or code), deadline, str(item.get("group", ""))))
    moves_from = str(data.get("election_day_moves_from") or "election_committee")
    if moves_from not in STAGE_CODES:
        raise PlanError(f"{path.name} 第{_line_of(text, 'election_day_moves_from')}行: 未知阶段“{moves_from}”")
    overrides = data.get("overrides") or {}
    towns: dict[str, dict[str, date]] = {}
    for town, values in (overrides.get("townships") or {}).items():
        towns[str(town)] = _stage_dates(values, path.name, text, str(town))
    villages: dict[str, dict[str, Any]] = {}
    for village, values in (overrides.get("villages") or {}).items():
        values = dict(values or {})
        entry: dict[str, Any] = {}
        if "election_day" in values:
            entry["election_day"] = _date(values.pop("election_day"), f"{path.name} 第{_line_of(text, str(village))}行")
        entry.update(_stage_dates(values, path.name, text, str(village)))
        villages[str(village)] = entry
    plan = Plan(str(data.get("name") or path.stem), stages, moves_from, towns, villages, str(path))
    for region in [*towns, *villages]:
        merged = plan.deadlines(township=region if region in towns else None, village=region if region in villages else None)
        order = [merged[c] for c in plan.codes]
        if order != sorted(order):
            raise PlanError(f"{path.name} 第{_line_of(text, region)}行: {region} 的时限调整后阶段顺序不对")
    return plan


def _stage_dates(values: Any, name: str, text: str, region: str) -> dict[str, date]:
    result = {}
    for code, value in (values or {}).items():
        where = f"{name} 第{_line_of(text, region)}行"
        if code not in STAGE_CODES:
            raise PlanError(f"{where}: 未知阶段“{code}”")
        result[code] = _date(value, where)
    return result
