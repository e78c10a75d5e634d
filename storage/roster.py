"""Roster import: the office's spreadsheet (xlsx, or csv in UTF-8 or GBK) → region tree, people, assignments.

The whole file is checked first; any bad row fails the import with every offending row number,
and nothing is written. Re-importing the same or an updated file updates, never duplicates.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from storage.models import (
    CADRE,
    COMMUNITY,
    COUNTY,
    LEADER,
    SECRETARY,
    STREET,
    TOWNSHIP,
    VILLAGE,
)
from storage.repositories import UnitOfWork

# canonical column → accepted header spellings (after normalisation: no spaces, brackets or slashes)
COLUMNS: dict[str, tuple[str, ...]] = {
    "county": ("区县", "县区", "县", "区", "县市区", "旗县", "区县名称"),
    "township": ("乡镇街道", "乡镇", "街道", "乡镇街", "镇街", "街镇", "乡镇街道名称"),
    "village": ("村社区", "村", "社区", "村居", "村社区名称", "村名", "嘎查村"),
    "cadre": ("包村干部", "包村", "包联干部", "包社区干部", "包村社区干部", "包村干部姓名"),
    "cadre_phone": ("包村干部手机", "包村干部电话", "包村干部手机号", "包村干部联系电话", "手机", "手机号", "联系电话"),
    "secretary": ("村支书", "村党组织书记", "支部书记", "书记", "村社区书记", "社区书记"),
    "secretary_phone": ("村支书手机", "村支书电话", "书记手机", "书记电话"),
    "leader": ("联系领导", "包片领导", "联系镇领导", "分管领导", "乡镇领导"),
    "leader_phone": ("联系领导手机", "联系领导电话", "领导手机"),
    "county_leader": ("县级领导", "县领导", "联系县领导"),
    "county_leader_phone": ("县级领导手机", "县领导手机", "县级领导电话"),
    "robot_key": ("群机器人", "群机器人key", "机器人key", "webhookkey"),
}
REQUIRED = ("township", "village", "cadre")
HEADER_HELP = "区县, 乡镇街道, 村社区, 包村干部, 包村干部手机, 村支书, 联系领导(可选: 联系领导手机, 县级领导, 县级领导手机)"
PHONE_RE = re.compile(r"^1\d{10}$")


class RosterError(Exception):
    """The file cannot be imported; `problems` lists each reason with its row number."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class RosterRow:
    line: int
    county: str
    township: str
    village: str
    cadre: str
    cadre_phone: str | None = None
    secretary: str | None = None
    secretary_phone: str | None = None
    leader: str | None = None
    leader_phone: str | None = None
    county_leader: str | None = None
    county_leader_phone: str | None = None
    robot_key: str | None = None


@dataclass
class ImportSummary:
    townships: int = 0
    villages: int = 0
    people: int = 0
    created_villages: int = 0
    changes: list[str] = field(default_factory=list)


def _norm_header(value: object) -> str:
    text = unicodedata.normalize("NFKC", str(value or "")).strip().lower()
    return re.sub(r"[\s()（）/、\\\-_·.:：*]", "", text)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return unicodedata.normalize("NFKC", str(value)).strip()


def read_table(path: Path) -> list[list[str]]:
    """Rows of the first sheet (xlsx) or the CSV file, as stripped strings."""
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        from openpyxl import load_workbook

        try:
            wb = load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds on a broken file
            raise RosterError([f"无法读取 Excel 文件 {path.name}: 文件损坏或不是 xlsx ({exc.__class__.__name__})"]) from None
        ws = wb.worksheets[0]
        rows = [[_cell(v) for v in row] for row in ws.iter_rows(values_only=True)]
        wb.close()
        return rows
    if suffix in (".csv", ".txt"):
        data = path.read_bytes()
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:  # pragma: no cover - gb18030 decodes almost anything
            raise RosterError([f"{path.name}: 无法识别文件编码(请另存为 UTF-8 或 GBK 的 CSV)"])
        if "\x00" in text:
            raise RosterError([f"{path.name}: 不是文本格式的 CSV 文件"])
        return [[_cell(v) for v in row] for row in csv.reader(io.StringIO(text))]
    raise RosterError([f"不支持的文件类型 {suffix or '(无扩展名)'}: 请使用 .xlsx 或 .csv"])


def parse_rows(table: list[list[str]], default_county: str = "本县") -> list[RosterRow]:
    """Check every row; raise RosterError listing all problems, else return the rows."""
    # the header is the first non-empty row
    start = next((i for i, row in enumerate(table) if any(row)), None)
    if start is None:
        raise RosterError(["文件是空的: 第一行应为表头 " + HEADER_HELP])
    header = [_norm_header(h) for h in table[start]]
    colmap: dict[str, int] = {}
    for key, names in COLUMNS.items():
        wanted = {_norm_header(n) for n in names}
        for idx, h in enumerate(header):
            if h in wanted and key not in colmap and idx not in colmap.values():
                colmap[key] = idx
                break
    missing = [COLUMNS[k][0] for k in REQUIRED if k not in colmap]
    if missing:
        raise RosterError([f"缺少必需的列: {'、'.join(missing)}(表头应为 {HEADER_HELP})"])

    problems: list[str] = []
    rows: list[RosterRow] = []
    seen: dict[tuple[str, str], int] = {}
    for offset, raw in enumerate(table[start + 1 :], start=start + 2):
        if not any(raw):
            continue

        def get(key: str, raw=raw) -> str:
            idx = colmap.get(key)
            return raw[idx] if idx is not None and idx < len(raw) else ""

        row = RosterRow(
            line=offset,
            county=get("county") or default_county,
            township=get("township"),
            village=get("village"),
            cadre=get("cadre"),
            cadre_phone=get("cadre_phone") or None,
            secretary=get("secretary") or None,
            secretary_phone=get("secretary_phone") or None,
            leader=get("leader") or None,
            leader_phone=get("leader_phone") or None,
            county_leader=get("county_leader") or None,
            county_leader_phone=get("county_leader_phone") or None,
            robot_key=get("robot_key") or None,
        )
        row_problems = []
        if not row.township:
            row_problems.append("乡镇街道为空")
        if not row.village:
            row_problems.append("村社区名称为空")
        if not row.cadre:
            row_problems.append("包村干部为空")
        for label, value in (("包村干部手机", row.cadre_phone), ("村支书手机", row.secretary_phone),
                             ("联系领导手机", row.leader_phone), ("县级领导手机", row.county_leader_phone)):
            if value is not None:
                digits = re.sub(r"[\s-]", "", value)
                if not PHONE_RE.match(digits):
                    row_problems.append(f"{label}“{value[:20]}”不是11位手机号")
        for label, value in (("村社区", row.village), ("乡镇街道", row.township), ("包村干部", row.cadre)):
            if len(value) > 60:
                row_problems.append(f"{label}过长")
        if row.township and row.village:
            key = (row.township, row.village)
            if key in seen:
                row_problems.append(f"与第{seen[key]}行重复({row.township} {row.village})")
            else:
                seen[key] = offset
        if row_problems:
            problems.append(f"第{offset}行: " + ";".join(row_problems))
        else:
            for attr in ("cadre_phone", "secretary_phone", "leader_phone", "county_leader_phone"):
                value = getattr(row, attr)
                if value:
                    setattr(row, attr, re.sub(r"[\s-]", "", value))
            rows.append(row)
    if problems:
        raise RosterError(problems)
    if not rows:
        raise RosterError(["文件没有数据行"])
    # one person with one phone must have one name
    phones: dict[str, tuple[str, int]] = {}
    for row in rows:
        for name, phone in ((row.cadre, row.cadre_phone), (row.secretary, row.secretary_phone),
                            (row.leader, row.leader_phone), (row.county_leader, row.county_leader_phone)):
            if name and phone:
                if phone in phones and phones[phone][0] != name:
                    problems.append(f"第{row.line}行: 手机号 {phone[:3]}****{phone[-4:]} 已在第{phones[phone][1]}行属于{phones[phone][0]}")
                phones.setdefault(phone, (name, row.line))
    if problems:
        raise RosterError(problems)
    return rows


def township_kind(name: str) -> str:
    return STREET if name.endswith("街道") else TOWNSHIP


def village_kind(name: str) -> str:
    return COMMUNITY if name.endswith(("社区", "居委会", "居民委员会")) else VILLAGE


def _person_key(name: str, phone: str | None, scope_id: int) -> str:
    return f"phone:{phone}" if phone else f"name:{name}@{scope_id}"


def apply_rows(uow: UnitOfWork, rows: list[RosterRow]) -> ImportSummary:
    """Write checked rows (the caller commits). Villages named again get their cadre and roles replaced."""
    summary = ImportSummary()
    townships: set[int] = set()
    people: set[int] = set()
    for row in rows:
        county = uow.regions.ensure(None, row.county, COUNTY)
        town = uow.regions.ensure(county.id, row.township, township_kind(row.township))
        if row.robot_key:
            town.robot_key = row.robot_key
        existing = uow.regions.child(town.id, row.village)
        village = uow.regions.ensure(town.id, row.village, village_kind(row.village))
        if existing is None:
            summary.created_villages += 1
        townships.add(town.id)

        cadre = uow.persons.ensure(_person_key(row.cadre, row.cadre_phone, county.id), row.cadre, row.cadre_phone)
        uow.persons.grant(cadre, CADRE, town.id)
        uow.persons.unassign_village(village.id, keep_person_id=cadre.id)
        uow.persons.assign(cadre, village)
        people.add(cadre.id)

        uow.persons.revoke_role(SECRETARY, village.id)
        if row.secretary:
            sec = uow.persons.ensure(_person_key(row.secretary, row.secretary_phone, village.id), row.secretary, row.secretary_phone)
            uow.persons.grant(sec, SECRETARY, village.id)
            people.add(sec.id)
        if row.leader:
            leader = uow.persons.ensure(_person_key(row.leader, row.leader_phone, town.id), row.leader, row.leader_phone)
            uow.persons.grant(leader, LEADER, town.id)
            people.add(leader.id)
        if row.county_leader:
            cl = uow.persons.ensure(
                _person_key(row.county_leader, row.county_leader_phone, county.id), row.county_leader, row.county_leader_phone
            )
            uow.persons.grant(cl, LEADER, county.id)
            people.add(cl.id)
    uow.session.flush()
    summary.townships = len(townships)
    summary.villages = len(rows)
    summary.people = len(people)
    return summary


def import_roster(uow: UnitOfWork, path: Path, actor: str, now: datetime) -> ImportSummary:
    rows = parse_rows(read_table(path))
    summary = apply_rows(uow, rows)
    uow.audit.record(actor, "roster_import", f"{path.name}: {summary.villages} villages", now)
    return summary
