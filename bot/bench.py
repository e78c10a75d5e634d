"""`huanjie bench`: builds a synthetic county (15 000 villages, 100 000 reports) in a temporary database
and prints every speed figure the issues ask for. Measurements, not assertions: the README's
performance table is copied from this output, with the machine it ran on.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, text

TZ = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 11, 23)
SYLLABLES = "东西南北前后上下大小新老红青白黄金银石山河湖沟湾坡岭屯堡庄营寨店桥井泉林园田家李王张刘陈杨赵周吴徐孙马朱胡郭何高罗郑梁谢宋唐许韩冯邓曹彭曾萧田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
STAGES = ["survey", "party_nomination", "qualification_review", "party_election", "election_committee",
          "voter_registration", "candidate_nomination", "voting", "supervision_committee", "handover"]


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))
    return ordered[k]


def village_names(n: int, seed: int = 7) -> list[str]:
    rnd = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        stem = "".join(rnd.choice(SYLLABLES) for _ in range(rnd.choice((2, 2, 3))))
        names.add(stem + rnd.choice(("村", "村", "村", "社区")))
    return sorted(names)


def build_county(deps, villages: int = 15_000, reports: int = 100_000, per_township: int = 100) -> dict:
    """Bulk-insert a county: townships of `per_township` villages, one cadre per 3 villages, reports over 10 days."""
    from storage.models import (
        CADRE,
        COMMUNITY,
        COUNTY,
        LEADER,
        STREET,
        TOWNSHIP,
        VILLAGE,
        Assignment,
        Chat,
        Person,
        PlatformIdentity,
        Region,
        Report,
        RoleGrant,
    )

    now = datetime.now(TZ)
    rnd = random.Random(11)
    names = village_names(villages)
    with deps.db.engine.begin() as conn:
        county_id = conn.execute(insert(Region).values(name="基准县", kind=COUNTY).returning(Region.id)).scalar_one()
        n_towns = (villages + per_township - 1) // per_township
        town_rows = [{"name": f"第{i + 1}镇" if i % 5 else f"第{i + 1}街道", "kind": TOWNSHIP if i % 5 else STREET,
                      "parent_id": county_id} for i in range(n_towns)]
        conn.execute(insert(Region), town_rows)
        town_ids = list(conn.execute(select(Region.id).where(Region.parent_id == county_id).order_by(Region.id)).scalars())
        conn.execute(insert(Region), [{"name": name, "kind": COMMUNITY if name.endswith("社区") else VILLAGE,
                                       "parent_id": town_ids[i // per_township]} for i, name in enumerate(names)])
        village_rows = conn.execute(select(Region.id, Region.parent_id).where(Region.parent_id.in_(town_ids)).order_by(Region.id)).all()
        n_cadres = (len(village_rows) + 2) // 3
        conn.execute(insert(Person), [{"key": f"phone:139{i:08d}", "name": f"干部{i}", "phone": f"139{i:08d}"} for i in range(n_cadres)])
        conn.execute(insert(Person), [{"key": f"phone:137{i:08d}", "name": f"领导{i}", "phone": f"137{i:08d}"} for i in range(n_towns)])
        cadre_ids = list(conn.execute(select(Person.id).where(Person.key.like("phone:139%")).order_by(Person.id)).scalars())
        leader_ids = list(conn.execute(select(Person.id).where(Person.key.like("phone:137%")).order_by(Person.id)).scalars())
        conn.execute(insert(Assignment), [{"person_id": cadre_ids[i // 3], "village_id": vid} for i, (vid, _t) in enumerate(village_rows)])
        grants = {(cadre_ids[i // 3], tid) for i, (_v, tid) in enumerate(village_rows)}
        conn.execute(insert(RoleGrant), [{"person_id": p, "role": CADRE, "region_id": t} for p, t in grants])
        conn.execute(insert(RoleGrant), [{"person_id": leader_ids[i], "role": LEADER, "region_id": t} for i, t in enumerate(town_ids)])
        conn.execute(insert(PlatformIdentity), [{"platform": "console", "external_id": f"c{p}", "person_id": p, "created_at": now}
                                                for p in cadre_ids + leader_ids])
        conn.execute(insert(Chat), [{"platform": "console", "chat_id": f"群{t}", "is_group": True, "region_id": t, "title": f"群{t}"}
                                    for t in town_ids])
        batch = []
        for i in range(reports):
            vid, _t = village_rows[i % len(village_rows)]
            day = DAY - timedelta(days=1 + (i // len(village_rows)) % 10)
            stage = rnd.randrange(len(STAGES))
            batch.append({"village_id": vid, "report_date": day, "kind": "daily", "stage": STAGES[stage],
                          "status": rnd.choice(("done", "in_progress")), "metrics": {"registered_voters": rnd.randint(300, 3000)},
                          "problems": ["外出务工人员联系不上"] if rnd.random() < 0.05 else [], "raw_text": "bench",
                          "author_id": cadre_ids[(i % len(village_rows)) // 3], "created_at": now, "current": True,
                          "petitions": 1 if rnd.random() < 0.01 else None})
            if len(batch) == 5000:
                conn.execute(insert(Report), batch)
                batch = []
        if batch:
            conn.execute(insert(Report), batch)
    deps.roster_changed()
    return {"county_id": county_id, "townships": len(town_ids), "villages": len(village_rows), "cadres": n_cadres,
            "reports": reports, "town_ids": town_ids}


def timed(fn, repeat: int = 3) -> tuple[float, object]:
    best = float("inf")
    result = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def bench_storage_figures(deps, county: dict, quick: bool) -> dict:
    from handlers.digest import build_digest
    from handlers.export import export_workbook
    from reminders import queries
    from reminders.nudges import enqueue_planned, plan_missing

    figures: dict = {}
    with deps.uow() as uow:
        region = uow.regions.get(county["county_id"])
        secs, missing = timed(lambda: queries.missing_villages(uow, region, DAY))
        figures["missing_list_ms"] = round(secs * 1000, 1)
        figures["missing_villages"] = len(missing)
    deps.extras["platforms"] = {"console"}
    t0 = time.perf_counter()
    with deps.uow() as uow:
        planned = plan_missing(deps, uow, "bench-nudge", DAY, "daily", 1)
        added = enqueue_planned(deps, uow, planned, datetime.combine(DAY, datetime.min.time(), TZ).replace(hour=16, minute=30))
        uow.commit()
    figures["nudge_planning_s"] = round(time.perf_counter() - t0, 3)
    figures["nudges_enqueued"] = added
    # the county has a cadre per three villages; the figure is per 15 000 nudges, at the measured rate
    figures["nudge_planning_per_15000_s"] = round(figures["nudge_planning_s"] * 15_000 / max(added, 1), 2)
    with deps.uow() as uow:
        region = uow.regions.get(county["county_id"])
        secs, _ = timed(lambda: build_digest(deps, uow, region, DAY - timedelta(days=1)), repeat=1 if quick else 3)
        figures["digest_ms"] = round(secs * 1000, 1)
        t0 = time.perf_counter()
        content = export_workbook(deps, uow, region, DAY - timedelta(days=1))
        figures["export_s"] = round(time.perf_counter() - t0, 2)
        figures["export_bytes"] = len(content)
    return figures


def bench_parse_store(deps, county: dict, messages: int) -> dict:
    """Reports through the real handler path (router → parser → storage) in bound township groups."""
    from bot.messages import ChatRef, Incoming, UserRef
    from storage.models import Assignment, PlatformIdentity, Region

    with deps.uow() as uow:
        rows = uow.session.execute(
            select(Region.name, Region.parent_id, PlatformIdentity.external_id)
            .join(Assignment, Assignment.village_id == Region.id)
            .join(PlatformIdentity, PlatformIdentity.person_id == Assignment.person_id)
            .limit(messages)
        ).all()
    deps.roster()  # built once at start-up, as in the running bot
    templates = ["{v} 选民登记已完成，登记选民{n}人", "{v}今天召开党员大会，应到党员{m}名，实到{k}名，无问题",
                 "{v} 资格联审进行中", "{v}：提名候选人已完成，候选人{c}名，存在问题：个别选民有异议"]
    rnd = random.Random(3)
    latencies = []
    router = deps.router

    async def run() -> None:
        for i, (village, town_id, user) in enumerate(rows):
            text_ = rnd.choice(templates).format(v=village, n=rnd.randint(300, 3000), m=40, k=37, c=6)
            msg = Incoming(chat=ChatRef("console", f"群{town_id}", True), sender=UserRef(user), text=text_, message_id=f"b{i}")
            t0 = time.perf_counter()
            replies = await router.dispatch(msg, deps)
            latencies.append(time.perf_counter() - t0)
            if not replies:
                raise RuntimeError(f"no confirmation for {text_}")

    t0 = time.perf_counter()
    asyncio.run(run())
    total = time.perf_counter() - t0
    return {"parse_store_msgs_per_s": round(len(latencies) / total, 1), "parse_store_p99_ms": round(percentile(latencies, 99) * 1000, 2),
            "parse_store_messages": len(latencies)}


def _benchmark(module: str):
    """A module of benchmarks/ (the repository root is put on sys.path when run from an installed script)."""
    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import importlib

    return importlib.import_module(f"benchmarks.{module}")


def bench_qa() -> dict:
    eval_file = Path(__file__).resolve().parent.parent / "tests" / "data" / "qa_eval.yaml"
    try:
        evaluate = _benchmark("qa_eval").evaluate
    except ImportError:
        return {"qa": "skipped (benchmarks/qa_eval.py not found)"}
    if not eval_file.is_file():
        return {"qa": "skipped (tests/data/qa_eval.yaml not found)"}
    r = evaluate(eval_file)
    return {f"qa_{k}": v for k, v in r.items() if isinstance(v, int | float | str)}


def bench_callbacks(quick: bool) -> dict:
    """300 encrypted WeCom callbacks a second on loopback (benchmarks/callback_load.py): 5 s quick, 30 s full."""
    try:
        run_load = _benchmark("callback_load").run_load
    except ImportError as exc:
        return {"callbacks": f"skipped ({exc})"}
    r = run_load(300, 5 if quick else 30)
    return {f"callbacks_{k}": v for k, v in r.items() if isinstance(v, int | float | str)}


def bench_startup(url: str) -> dict:
    """Seconds from process start until the app is ready (settings, migrations, roster, handbook index)."""
    code = ("import time; t=time.perf_counter(); from bot.settings import load_settings; from bot.app import build_deps;"
            "d=build_deps(load_settings()); d.db.upgrade(); d.router; d.roster(); d.qa;"
            "print(time.perf_counter()-t)")
    env = {**os.environ, "HUANJIE_DATABASE_URL": url}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          cwd=str(Path(__file__).resolve().parent.parent))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        return {"startup_s": f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"}
    return {"startup_s": round(wall, 2), "startup_in_process_s": round(float(proc.stdout.strip().splitlines()[-1]), 2)}


def run_bench(quick: bool = False, postgres_url: str | None = None) -> dict:
    from bot.app import build_deps
    from bot.clock import FakeClock
    from bot.settings import Settings
    from storage.db import Database

    results: dict = {"machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}",
                     "quick": quick}
    targets = [("sqlite", None)]
    if postgres_url:
        targets.append(("postgresql", postgres_url))
    for kind, url in targets:
        with tempfile.TemporaryDirectory() as tmp:
            if url is None:
                db_url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            else:
                db_url = _fresh_pg_database(url)
            db = Database(db_url)
            db.upgrade()
            clock = FakeClock(datetime(2026, 11, 23, 16, 0, tzinfo=TZ))
            deps = build_deps(Settings(database_url=db_url), clock=clock, db=db)
            t0 = time.perf_counter()
            county = build_county(deps, 15_000, 100_000)
            section = {"build_county_s": round(time.perf_counter() - t0, 1), "villages": county["villages"], "reports": county["reports"]}
            section.update(bench_storage_figures(deps, county, quick))
            try:
                section.update(bench_parse_store(deps, county, 1500 if quick else 10_000))
            except ImportError as exc:
                section["parse_store"] = f"skipped ({exc})"
            if kind == "sqlite":
                section.update(bench_startup(db_url))
            db.dispose()
            results[kind] = section
    results.update(bench_qa())
    results.update(bench_callbacks(quick))
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results


def _fresh_pg_database(url: str) -> str:
    from sqlalchemy import create_engine

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS huanjie_bench WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE huanjie_bench"))
    admin.dispose()
    return url.rsplit("/", 1)[0] + "/huanjie_bench"


def format_results(r: dict) -> str:
    lines = [f"换届助手 benchmark — {r['machine']}{' (quick)' if r['quick'] else ''}"]
    for kind in ("sqlite", "postgresql"):
        if kind not in r:
            continue
        s = r[kind]
        lines.append(f"[{kind}] county: {s['villages']} villages, {s['reports']} reports (built in {s['build_county_s']} s)")
        for key, label, unit in (
            ("parse_store_msgs_per_s", "parse + store through the handler", "messages/s"),
            ("parse_store_p99_ms", "parse + store p99", "ms"),
            ("missing_list_ms", "missing-report list, whole county", "ms"),
            ("nudge_planning_s", f"plan + enqueue {s.get('nudges_enqueued', '?')} nudges", "s"),
            ("nudge_planning_per_15000_s", "  … at that rate, per 15 000 nudges", "s"),
            ("digest_ms", "daily digest, whole county", "ms"),
            ("export_s", "Excel export, whole county", "s"),
            ("startup_s", "start-up (process start → ready)", "s"),
        ):
            if key in s:
                lines.append(f"  {label:<40} {s[key]} {unit}")
        if "parse_store" in s:
            lines.append(f"  parse + store: {s['parse_store']}")
    for key, label in (("qa_top1", "Q&A top-1 accuracy"), ("qa_refusal", "Q&A out-of-domain refusal"),
                       ("qa_p95_ms", "Q&A p95 latency ms"), ("qa_build_ms", "Q&A index build ms"), ("qa", "Q&A")):
        if key in r:
            lines.append(f"{label:<42} {r[key]}")
    if "callbacks_p99_ms" in r:
        lines.append(f"{'WeCom callbacks, ' + str(r['callbacks_seconds']) + ' s at 300/s (sqlite)':<42} "
                     f"{r['callbacks_rate_achieved']}/s, p99 {r['callbacks_p99_ms']} ms, stored "
                     f"{r['callbacks_reports_stored']}/{r['callbacks_distinct_reports_sent']}, duplicates "
                     f"{r['callbacks_duplicates']}")
    elif "callbacks" in r:
        lines.append(f"{'WeCom callbacks':<42} {r['callbacks']}")
    lines.append(f"{'peak RSS':<42} {r['peak_rss_mb']} MB")
    return "\n".join(lines)


def main(quick: bool, as_json: bool) -> int:
    results = run_bench(quick, os.environ.get("HUANJIE_TEST_POSTGRES_URL") or None)
    print(json.dumps(results, ensure_ascii=False, default=str) if as_json else format_results(results))
    return 0
