"""`huanjie doctor`: checks settings, database, migrations, platform credentials (without sending),
time zone, font and content files, and says what is wrong in Chinese and English."""

from __future__ import annotations

from collections.abc import Callable


def _check(name: str, fn: Callable[[], str]) -> tuple[bool, str, str]:
    try:
        return True, name, fn()
    except Exception as exc:  # every failure becomes one readable line
        return False, name, f"{exc.__class__.__name__}: {exc}"


def run_doctor() -> tuple[bool, list[str]]:
    from bot.settings import SettingsError, load_settings

    lines: list[str] = []
    try:
        settings = load_settings()
    except SettingsError as exc:
        return False, [f"✗ 配置 settings: {exc}"]
    results = []

    def tz() -> str:
        from datetime import datetime

        now = datetime.now(settings.tz)
        return f"{settings.timezone}, 现在 now {now:%Y-%m-%d %H:%M %Z}"

    def database() -> str:
        from storage.db import Database

        db = Database(settings.db_url)
        db.check()
        if not db.has_tables():
            raise RuntimeError("数据库还没有表，请运行 huanjie db upgrade / no tables yet: run `huanjie db upgrade`")
        state = "最新 up to date" if db.is_current() else "需要升级 needs `huanjie db upgrade`"
        if not db.is_current():
            raise RuntimeError(state)
        return f"{db.safe_url} ({state})"

    def roster() -> str:
        from storage.db import Database

        db = Database(settings.db_url)
        with db.uow() as uow:
            n = len(uow.regions.villages())
        if n == 0:
            raise RuntimeError("名单为空，请 huanjie roster import 文件 / roster is empty")
        return f"{n} 个村(社区) villages"

    def plan() -> str:
        from reminders.plan import DEFAULT_PLAN, load_plan

        p = load_plan(settings.plan_file or DEFAULT_PLAN)
        return f"{p.name}, {len(p.stages)} 个阶段 stages"

    def handbook() -> str:
        from content.handbook import Handbook

        hb = Handbook.load()
        return f"{len(hb.entries)} 条问答 entries"

    def font() -> str:
        from handlers.chart import cjk_font

        return str(cjk_font())

    def platforms() -> str:
        found = settings.platforms
        if not found:
            return "未配置平台，使用本地控制台 / no platform configured: local console"
        problems = []
        if "wecom" in found and settings.wecom_corp_id and not (settings.wecom_secret and settings.wecom_token and settings.wecom_aes_key):
            problems.append("企业微信需要 HUANJIE_WECOM_SECRET/TOKEN/AES_KEY")
        if "mp" in found and not settings.mp_token:
            problems.append("公众号需要 HUANJIE_MP_TOKEN(安全模式还需 HUANJIE_MP_AES_KEY)")
        if problems:
            raise RuntimeError("；".join(problems))
        return ", ".join(found)

    for name, fn in (("时区 time zone", tz), ("数据库 database", database), ("名单 roster", roster), ("计划 plan", plan),
                     ("问答手册 handbook", handbook), ("中文字体 CJK font", font), ("平台 platforms", platforms)):
        results.append(_check(name, fn))
    ok = all(r[0] for r in results)
    for good, name, detail in results:
        lines.append(f"{'✓' if good else '✗'} {name}: {detail}")
    return ok, lines
