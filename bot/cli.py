"""`huanjie` command line: run the bot, manage the database and roster, and the offline contracts
(`parse`, `ask`, `law`, …) that work without any chat platform.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import date, datetime
from pathlib import Path

from bot.settings import SettingsError, load_settings


def _utf8_stdio() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(encoding="utf-8")  # type: ignore[attr-defined]
        except (AttributeError, ValueError):
            pass


def _date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"日期应写成 YYYY-MM-DD(例如 2026-11-21)，而不是“{text}”") from None


def _datetime_arg(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"时间应写成 \"YYYY-MM-DD HH:MM\"，而不是“{text}”") from None


def fail(message: str, code: int = 2) -> int:
    print(message, file=sys.stderr)
    return code


def _deps(args, upgrade: bool = True, retries: int = 0):
    from bot.app import build_deps
    from storage.db import DatabaseUnavailable

    settings = load_settings()
    deps = build_deps(settings)
    for attempt in range(retries + 1):
        try:
            deps.db.check()
            break
        except DatabaseUnavailable:
            if attempt == retries:
                raise
            wait = min(2 ** attempt, 10)
            print(f"数据库暂时连不上，{wait}秒后重试({attempt + 1}/{retries}) / database unreachable, retrying", file=sys.stderr)
            time.sleep(wait)
    if upgrade:
        deps.db.upgrade()
    return deps


def cmd_db(args) -> int:
    deps = _deps(args, upgrade=False)
    if args.action == "upgrade":
        deps.db.upgrade()
        print(f"数据库已升级到最新结构 / migrations applied: {deps.db.safe_url}")
    else:
        print("current" if deps.db.is_current() else "needs upgrade")
    return 0


def cmd_roster(args) -> int:
    from storage.roster import RosterError, import_roster

    deps = _deps(args)
    if args.action == "import":
        path = Path(args.file)
        if not path.is_file():
            return fail(f"找不到文件 {path}")
        try:
            with deps.uow() as uow:
                summary = import_roster(uow, path, "cli", deps.clock.now())
                uow.commit()
        except RosterError as exc:
            print(f"名单导入失败，未写入任何数据 / roster rejected, nothing written ({len(exc.problems)}):", file=sys.stderr)
            for p in exc.problems:
                print("  " + p, file=sys.stderr)
            return 1
        print(
            f"导入完成：{summary.townships}个乡镇(街道)、{summary.villages}个村(社区)、{summary.people}人"
            f"(新增村/社区{summary.created_villages}个)"
        )
        return 0
    from bot.roster_view import roster_tree

    text = roster_tree(deps, args.region)
    print(text)
    return 0 if not text.startswith("找不到") else 1


ROLE_CHOICES = ("admin", "leader", "cadre", "secretary", "resident")
LINK_PLATFORMS = ("wecom", "mp", "telegram")


def cmd_person(args) -> int:
    """`person grant 姓名 角色`, or `person link 姓名 wecom:USERID` (an account the bot could not match)."""
    if args.action == "grant" and args.value not in ROLE_CHOICES:
        return fail(f"角色应为 {'/'.join(ROLE_CHOICES)} 之一，而不是“{args.value}”")
    platform, _, external_id = args.value.partition(":")
    if args.action == "link" and (platform not in LINK_PLATFORMS or not external_id.strip()):
        return fail(f"账号的写法是 平台:账号，例如 wecom:ZhangSan(平台为 {'/'.join(LINK_PLATFORMS)})")
    deps = _deps(args)
    with deps.uow() as uow:
        people = uow.persons.by_name(args.name)
        if len(people) != 1:
            return fail(f"名单中有{len(people)}个“{args.name}”")
        if args.action == "link":
            uow.identities.link(platform, external_id.strip(), people[0], deps.clock.now())
            uow.audit.record("cli", "link", f"{platform}:{external_id.strip()} -> person {people[0].id}", deps.clock.now())
            uow.commit()
            print(f"已把 {platform} 账号 {external_id.strip()} 绑定到 {args.name}")
            return 0
        uow.persons.grant(people[0], args.value)
        uow.audit.record("cli", "grant", f"{people[0].id} {args.value}", deps.clock.now())
        uow.commit()
    print(f"已授予 {args.name} 角色 {args.value}")
    return 0


def _roster_for_parse(args):
    from handlers.report_parser import Roster, RosterVillage
    from storage.roster import parse_rows, read_table

    if args.roster:
        rows = parse_rows(read_table(Path(args.roster)))
        return Roster([RosterVillage(r.village, r.township) for r in rows])
    if args.no_roster:
        return None
    settings = load_settings()
    db_path = settings.db_url.split("///", 1)[1] if settings.db_url.startswith("sqlite") else None
    if db_path is not None and not Path(db_path).is_file():
        return None  # no database yet: parse without a roster rather than creating one
    from bot.app import build_deps

    try:
        deps = build_deps(settings)
        if not deps.db.has_tables():
            return None
        roster = deps.roster()
        return roster if len(roster.villages) else None
    except Exception:  # a parse must work without a database
        return None


def _lines(text: str) -> list[str]:
    if text == "-":
        return [line.rstrip("\n") for line in sys.stdin]
    return [text]


def cmd_parse(args) -> int:
    from handlers.report_parser import parse_report

    ref = args.date if args.date else _today()
    roster = _roster_for_parse(args)
    for text in _lines(args.text):
        result = parse_report(text, ref, roster)
        if args.json:
            print(json.dumps(result.to_json(), ensure_ascii=False), flush=True)
        else:
            print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    return 0


def _today() -> date:
    return datetime.now(load_settings().tz).date()


def cmd_ask(args) -> int:
    from content.handbook import Handbook, QAEngine

    engine = QAEngine(Handbook.load())
    for text in _lines(args.text):
        answer = engine.ask(text)
        if args.json:
            print(json.dumps(answer.to_json(), ensure_ascii=False), flush=True)
        else:
            data = answer.to_json()
            if data["matched"]:
                print(f"问：{data['question']}\n答：{data['answer']}\n依据：{'；'.join(data['sources'])}\n")
            elif data["suggestions"]:
                print("没有找到确切答案，您是不是想问：")
                for s in data["suggestions"]:
                    print(f"  - {s['question']}")
            else:
                print("抱歉，换届问答手册里没有这个问题的答案。")
    return 0


def cmd_law(args) -> int:
    from content.laws import LawLibrary, format_article

    library = LawLibrary.load()
    article = library.lookup(args.law, args.article)
    if article is None:
        return fail(f"没有找到《{args.law}》第{args.article}条", 1)
    print(format_article(article))
    return 0


def cmd_plan(args) -> int:
    from reminders.plan import DEFAULT_PLAN, PlanError, load_plan

    settings = load_settings()
    try:
        plan = load_plan(args.file or settings.plan_file or DEFAULT_PLAN)
    except PlanError as exc:
        return fail(f"计划文件有误，未采用 / plan rejected: {exc}", 1)
    if args.action == "check":
        print(f"计划有效：{plan.name}，{len(plan.stages)}个阶段")
        return 0
    township = village = None
    election_day = None
    if args.region:
        deps = _deps(args)
        with deps.uow() as uow:
            found = uow.regions.find(args.region)
            if not found:
                return fail(f"找不到“{args.region}”", 1)
            region = found[0]
            town = uow.regions.township_of(region)
            township = town.name if town else None
            if region.kind in ("village", "community"):
                village, election_day = region.name, region.election_day
    deadlines = plan.deadlines(township, village, election_day)
    print(f"{plan.name}：{args.region or '默认'}的时限")
    for stage in plan.stages:
        print(f"  {deadlines[stage.code].isoformat()}  {stage.name} ({stage.code})")
    return 0


def cmd_remind(args) -> int:
    from reminders.jobs import job_specs, plan_job

    deps = _deps(args)
    tz = deps.settings.tz
    at = args.at.replace(tzinfo=tz) if args.at else deps.clock.now()
    specs = [s for s in job_specs(deps.settings) if s.at.hour == at.hour and s.at.minute == at.minute
             and (s.weekday is None or s.weekday == at.weekday())]
    if args.job:
        specs = [s for s in job_specs(deps.settings) if s.id == args.job]
    if not specs:
        print(f"{at:%Y-%m-%d %H:%M} 没有计划中的提醒任务。任务时间：" +
              "，".join(f"{s.id} {s.at:%H:%M}" for s in job_specs(deps.settings)))
        return 0
    from reminders.jobs import calendar_for

    deps.extras["platforms"] = {"console", "telegram", "wecom", "wecom_robot"}
    if not calendar_for(deps).is_workday(at.date()):
        print(f"{at:%Y-%m-%d} 不是工作日(节假日或周末)，不发送提醒。")
        return 0
    total = 0
    with deps.uow() as uow:
        for spec in specs:
            planned = plan_job(deps, uow, spec.id, at)
            print(f"== {spec.id} {spec.description}：{len(planned)}条")
            for p in planned:
                print(f"  [{p.platform} → {p.target}] {p.reason}")
            total += len(planned)
    if not args.dry_run:
        from reminders.jobs import run_job

        added = sum(run_job(deps, s.id, at) for s in specs)
        print(f"已放入发送队列：{added}条")
    return 0


def _scope_region(deps, uow, name: str | None):
    if not name:
        roots = uow.regions.roots()
        return roots[0] if len(roots) == 1 else None
    found = [r for r in uow.regions.find(name) if r.kind not in ("village", "community")]
    if not found:
        raise LookupError(name)
    return found[0]


def cmd_digest(args) -> int:
    from handlers.digest import build_digest

    deps = _deps(args)
    day = args.date if args.date else deps.today()
    with deps.uow() as uow:
        try:
            region = _scope_region(deps, uow, args.scope)
        except LookupError:
            return fail(f"找不到范围“{args.scope}”(请写乡镇、街道或县名)", 1)
        data = build_digest(deps, uow, region, day, weekly=args.weekly)
    data.pop("chart", None)
    if args.format == "json":
        print(json.dumps(data, ensure_ascii=False, default=str))
    else:
        from bot.messages import Reply

        print(deps.renderer.render(Reply("digest", data), "markdown" if args.format == "markdown" else "text"))
    return 0


def cmd_export(args) -> int:
    from handlers.export import export_workbook, week_end

    deps = _deps(args)
    day = deps.today()
    if args.week:
        try:
            day = week_end(args.week, deps.today())
        except ValueError:
            return fail(f"周的格式应为 2026-W47，而不是“{args.week}”", 1)
    if args.date:
        day = args.date
    with deps.uow() as uow:
        try:
            region = _scope_region(deps, uow, args.scope)
        except LookupError:
            return fail(f"找不到范围“{args.scope}”", 1)
        content = export_workbook(deps, uow, region, day)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_bytes(content)
    tmp.replace(out)
    print(f"已导出 {out}({len(content)} 字节，截至{day.isoformat()})")
    return 0


def cmd_chart(args) -> int:
    from handlers.chart import digest_chart
    from handlers.digest import build_digest

    deps = _deps(args)
    day = args.date if args.date else deps.today()
    with deps.uow() as uow:
        try:
            region = _scope_region(deps, uow, args.scope)
        except LookupError:
            return fail(f"找不到范围“{args.scope}”", 1)
        data = build_digest(deps, uow, region, day, weekly=True)
    Path(args.out).write_bytes(digest_chart(data))
    print(f"已生成 {args.out}")
    return 0


def cmd_run(args) -> int:
    from bot.runner import run_bot

    deps = _deps(args, retries=args.retries)
    if args.demo:
        from bot.demo import load_demo

        print(load_demo(deps))
    return asyncio.run(run_bot(deps, console=args.console, headless=args.headless))


def cmd_doctor(args) -> int:
    from bot.doctor import run_doctor

    ok, lines = run_doctor()
    print("\n".join(lines))
    print("一切正常 / all good" if ok else "有问题需要处理 / problems found")
    return 0 if ok else 1


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="huanjie", description="换届助手 — 村(社区)“两委”换届工作机器人")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="start the bot (local console when no platform is configured)")
    r.add_argument("--demo", action="store_true", help="load the demo roster first")
    r.add_argument("--console", action="store_true", help="use the local console even if platforms are configured")
    r.add_argument("--retries", type=int, default=5, help="database connection retries at start")
    r.add_argument("--headless", action="store_true", help="scheduler and sender only (extra worker, no console)")
    r.set_defaults(func=cmd_run)

    d = sub.add_parser("db", help="database migrations")
    d.add_argument("action", choices=["upgrade", "status"])
    d.set_defaults(func=cmd_db)

    ro = sub.add_parser("roster", help="import or show the roster")
    ro_sub = ro.add_subparsers(dest="action", required=True)
    ri = ro_sub.add_parser("import", help="import an .xlsx or .csv roster")
    ri.add_argument("file")
    rs = ro_sub.add_parser("show", help="print the region tree with cadres")
    rs.add_argument("region", nargs="?")
    ro.set_defaults(func=cmd_roster)

    pe = sub.add_parser("person", help="grant a role to a roster person, or link a platform account to them")
    pe.add_argument("action", choices=["grant", "link"])
    pe.add_argument("name")
    pe.add_argument("value", metavar="role|platform:id",
                    help="grant: admin/leader/cadre/secretary/resident; link: wecom:USERID, mp:OPENID or telegram:ID")
    pe.set_defaults(func=cmd_person)

    pa = sub.add_parser("parse", help="parse a report message (TEXT, or - for one message per stdin line)")
    pa.add_argument("text")
    pa.add_argument("--json", action="store_true", help="one JSON object per line")
    pa.add_argument("--date", type=_date_arg, help="reference date YYYY-MM-DD (default today)")
    pa.add_argument("--roster", help="roster file to resolve village names (default: the database's roster)")
    pa.add_argument("--no-roster", action="store_true", help="parse without any roster")
    pa.set_defaults(func=cmd_parse)

    a = sub.add_parser("ask", help="ask the 换届 handbook (TEXT, or - for one question per stdin line)")
    a.add_argument("text")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_ask)

    pl = sub.add_parser("plan", help="show or check the 换届 plan")
    pl.add_argument("action", choices=["show", "check"])
    pl.add_argument("region", nargs="?")
    pl.add_argument("--file", help="plan YAML (default content/plans/default.yaml or HUANJIE_PLAN_FILE)")
    pl.set_defaults(func=cmd_plan)

    rm = sub.add_parser("remind", help="show (or send) the reminders due at a time")
    rm.add_argument("--dry-run", action="store_true", help="print who would be nudged and why; send nothing")
    rm.add_argument("--at", type=_datetime_arg, help='"YYYY-MM-DD HH:MM" in the configured time zone (default now)')
    rm.add_argument("--job", help="one job id instead of the jobs due at --at")
    rm.set_defaults(func=cmd_remind)

    dg = sub.add_parser("digest", help="print the leaders' digest for a scope and date")
    dg.add_argument("--scope", help="township/street/county name (default: the only county)")
    dg.add_argument("--date", type=_date_arg, help="YYYY-MM-DD (default today)")
    dg.add_argument("--format", choices=["text", "json", "markdown"], default="text")
    dg.add_argument("--weekly", action="store_true", help="the weekly digest (weekly reports, change against last week)")
    dg.set_defaults(func=cmd_digest)

    ex = sub.add_parser("export", help="write the progress workbook (.xlsx)")
    ex.add_argument("out")
    ex.add_argument("--scope")
    ex.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: up to today)")
    ex.add_argument("--date", type=_date_arg, help="YYYY-MM-DD instead of --week")
    ex.set_defaults(func=cmd_export)

    ch = sub.add_parser("chart", help="write the weekly stage-completion chart (.png)")
    ch.add_argument("out")
    ch.add_argument("--scope")
    ch.add_argument("--date", type=_date_arg, help="YYYY-MM-DD (default today)")
    ch.set_defaults(func=cmd_chart)

    be = sub.add_parser("bench", help="build a synthetic 15 000-village county and print every speed figure")
    be.add_argument("--quick", action="store_true", help="fewer messages; finishes in under a minute")
    be.add_argument("--json", action="store_true")
    be.set_defaults(func=lambda a: __import__("bot.bench", fromlist=["main"]).main(a.quick, a.json))

    doc = sub.add_parser("doctor", help="check settings, database, plan, handbook, font and platforms")
    doc.set_defaults(func=cmd_doctor)

    law = sub.add_parser("law", help="print a law article, e.g. huanjie law 村委会组织法 16")
    law.add_argument("law")
    law.add_argument("article")
    law.set_defaults(func=cmd_law)
    return p


def main(argv: list[str] | None = None) -> int:
    _utf8_stdio()
    args = build_parser().parse_args(argv)
    from bot.logging_setup import setup_logging

    try:
        setup_logging(load_settings())
        return args.func(args)
    except SettingsError as exc:
        return fail(f"配置错误 / bad setting: {exc}")
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        from storage.db import DatabaseUnavailable

        if isinstance(exc, DatabaseUnavailable):
            return fail(str(exc))
        raise


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
