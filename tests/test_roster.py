"""Roster import on SQLite and PostgreSQL: the demo file round-trips, re-import updates, bad files
are rejected with every row number and nothing written."""

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook

from bot.demo import DEMO_ROSTER
from storage.roster import RosterError, import_roster

HEADER = ["区县", "乡镇街道", "村社区", "包村干部", "包村干部手机", "村支书", "联系领导"]


def _import(deps, path):
    with deps.uow() as uow:
        summary = import_roster(uow, path, "test", deps.clock.now())
        uow.commit()
    return summary


def _counts(deps):
    with deps.uow() as uow:
        return len(uow.regions.townships()), len(uow.regions.villages()), uow.persons.count()


def test_demo_roster_round_trips(any_deps):
    assert _counts(any_deps) == (3, 30, 49)
    with any_deps.uow() as uow:
        zhang = uow.persons.by_name("张三")[0]
        assert [v.name for v in uow.persons.assigned_villages(zhang.id)] == ["前进村", "红旗村"]
        town = uow.regions.find("新营子镇")[0]
        assert [p.name for p in uow.persons.with_role("leader", town.id)] == ["赵建国"]
        kinds = {v.kind for v in uow.regions.villages(uow.regions.find("东湖街道")[0].id)}
        assert kinds == {"community"}
    _import(any_deps, DEMO_ROSTER)  # again: nothing duplicated
    assert _counts(any_deps) == (3, 30, 49)


def test_reimport_updates_cadre(any_deps, tmp_path):
    path = tmp_path / "change.csv"
    path.write_text("区县,乡镇街道,村社区,包村干部,包村干部手机\n青山县,新营子镇,前进村,李四,13800000102\n", encoding="utf-8")
    _import(any_deps, path)
    with any_deps.uow() as uow:
        village = uow.regions.find("新营子镇")[0]
        qianjin = uow.regions.child(village.id, "前进村")
        assert [p.name for p in uow.persons.cadres_of(qianjin.id)] == ["李四"]
    assert _counts(any_deps) == (3, 30, 49)


def test_gbk_csv_with_header_variants(empty_deps, tmp_path):
    path = tmp_path / "gbk.csv"
    rows = [["县(区)", "乡镇/街道", "村(社区)", "包村干部", "包村干部手机", "村党组织书记", "联系领导"],
            ["白河县", "三合镇", "三合村", "王刚", "13900000001", "刘强", "马丽"]]
    with path.open("w", encoding="gbk", newline="") as f:
        csv.writer(f).writerows(rows)
    summary = _import(empty_deps, path)
    assert summary.villages == 1
    with empty_deps.uow() as uow:
        assert uow.regions.find("三合村")[0].kind == "village"
        assert uow.persons.by_phone("13900000001").name == "王刚"


def test_xlsx_import(empty_deps, tmp_path):
    wb = Workbook()
    ws = wb.active
    ws.append(HEADER)
    ws.append(["白河县", "城关街道", "幸福社区", "王刚", 13900000001, "刘强", "马丽"])
    path = tmp_path / "roster.xlsx"
    wb.save(path)
    _import(empty_deps, path)
    with empty_deps.uow() as uow:
        town = uow.regions.find("城关街道")[0]
        assert town.kind == "street"
        assert uow.regions.villages(town.id)[0].name == "幸福社区"


def test_broken_file_lists_every_row_and_writes_nothing(any_deps, tmp_path):
    before = _counts(any_deps)
    path = tmp_path / "bad.csv"
    path.write_text(
        "区县,乡镇街道,村社区,包村干部,包村干部手机\n"
        "青山县,新营子镇,新村A,甲,13900000001\n"  # row 2: fine, must not be written either
        "青山县,新营子镇,,乙,13900000002\n"  # row 3: empty village
        "青山县,新营子镇,新村A,丙,13900000003\n"  # row 4: duplicate of row 2
        "青山县,新营子镇,新村B,丁,1390000\n",  # row 5: phone not 11 digits
        encoding="utf-8",
    )
    with pytest.raises(RosterError) as err:
        _import(any_deps, path)
    problems = "\n".join(err.value.problems)
    assert "第3行" in problems and "村社区名称为空" in problems
    assert "第4行" in problems and "与第2行重复" in problems
    assert "第5行" in problems and "11位手机号" in problems
    assert "第2行:" not in problems
    assert _counts(any_deps) == before
    with any_deps.uow() as uow:
        assert uow.regions.find("新村A") == []


def test_missing_column(empty_deps, tmp_path):
    path = tmp_path / "nocol.csv"
    path.write_text("区县,乡镇街道,包村干部\n青山县,新营子镇,甲\n", encoding="utf-8")
    with pytest.raises(RosterError) as err:
        _import(empty_deps, path)
    assert "缺少必需的列" in err.value.problems[0] and "村社区" in err.value.problems[0]


@pytest.mark.parametrize("content, suffix", [(b"\x00\x01\x02garbage", ".xlsx"), (b"PK\x03\x04broken", ".xlsx"), (b"", ".csv"), (b"x", ".pdf")])
def test_malformed_files_are_refused(empty_deps, tmp_path, content, suffix):
    path = tmp_path / f"f{suffix}"
    path.write_bytes(content)
    with pytest.raises(RosterError):
        _import(empty_deps, path)
    assert _counts(empty_deps) == (0, 0, 0)


def test_demo_file_is_documented_format():
    header = Path(DEMO_ROSTER).read_text(encoding="utf-8").splitlines()[0].split(",")
    assert header[:7] == HEADER
