"""The 换届 plan: default deadlines, overrides, and bad plans rejected with line and reason."""

from datetime import date

import pytest

from reminders.plan import DEFAULT_PLAN, PlanError, load_plan


def test_default_plan_meets_the_cycle_targets():
    plan = load_plan()
    d = plan.deadlines()
    assert plan.codes[0] == "survey" and plan.codes[-1] == "handover" and len(plan.codes) == 10
    assert max(d[c] for c in ("survey", "party_nomination", "qualification_review", "party_election")) <= date(2026, 12, 31)
    assert max(d[c] for c in ("election_committee", "voter_registration", "candidate_nomination", "voting")) <= date(2027, 2, 28)
    assert d["handover"] == date(2027, 3, 31) and d["supervision_committee"] <= date(2027, 3, 31)
    order = [d[c] for c in plan.codes]
    assert order == sorted(order)


def _write(tmp_path, body: str):
    path = tmp_path / "plan.yaml"
    path.write_text(body, encoding="utf-8")
    return path


BASE = """name: 测试计划
stages:
  - {code: survey, name: 摸底, deadline: 2026-11-30}
  - {code: party_nomination, name: 两推一选, deadline: 2026-12-10}
"""


def test_unknown_stage_is_rejected_with_line(tmp_path):
    with pytest.raises(PlanError) as err:
        load_plan(_write(tmp_path, BASE + "  - {code: picnic, name: 野餐, deadline: 2026-12-20}\n"))
    assert "第5行" in str(err.value) and "未知阶段“picnic”" in str(err.value)


def test_bad_date_is_rejected(tmp_path):
    with pytest.raises(PlanError) as err:
        load_plan(_write(tmp_path, BASE + "  - {code: qualification_review, name: 联审, deadline: 十二月底}\n"))
    assert "第5行" in str(err.value) and "不是日期" in str(err.value)


def test_out_of_order_is_rejected(tmp_path):
    with pytest.raises(PlanError) as err:
        load_plan(_write(tmp_path, BASE + "  - {code: qualification_review, name: 联审, deadline: 2026-12-01}\n"))
    assert "早于上一阶段" in str(err.value)


def test_township_and_village_overrides(tmp_path):
    body = BASE + "  - {code: voting, name: 投票, deadline: 2027-02-28}\n  - {code: handover, name: 移交, deadline: 2027-03-31}\n"
    body += "overrides:\n  townships:\n    东湖街道: {voting: 2027-02-20}\n  villages:\n    前进村: {election_day: 2027-01-20}\n"
    plan = load_plan(_write(tmp_path, body))
    assert plan.deadlines("东湖街道")["voting"] == date(2027, 2, 20)
    qianjin = plan.deadlines("新营子镇", "前进村")
    assert qianjin["voting"] == date(2027, 1, 20)
    assert qianjin["handover"] == date(2027, 2, 20)  # moved with the election day
    assert qianjin["survey"] == date(2026, 11, 30)  # earlier stages stay


def test_previous_plan_stays_when_reload_fails(deps, tmp_path):
    before = deps.plan
    bad = _write(tmp_path, BASE + "  - {code: picnic, deadline: 2026-12-20}\n")
    with pytest.raises(PlanError):
        deps.reload_plan(bad)
    assert deps.plan is before
    good = _write(tmp_path, BASE)
    deps.reload_plan(good)
    assert deps.plan.name == "测试计划"


def test_default_plan_file_is_under_content():
    assert DEFAULT_PLAN.parent.name == "plans" and DEFAULT_PLAN.parent.parent.name == "content"
