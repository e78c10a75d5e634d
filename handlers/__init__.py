"""Platform-neutral conversation logic. `build_router()` is the one route table of the bot."""

from __future__ import annotations

from bot.router import ADMINS, EVERYONE, LEADERS, MEMBERS, REPORTERS, Route, Router


def build_router() -> Router:
    from handlers import core, digest_cmd, guided, progress, qa, reminders_cmd, reports

    routes = [
        Route("start", core.on_start, EVERYONE, "开始使用", hidden=True),
        Route("help", core.on_help, EVERYONE, "查看可用的命令", aliases=("帮助",)),
        Route("bind", core.on_bind, EVERYONE, "绑定身份", "姓名 手机后四位", aliases=("绑定",)),
        Route("whoami", core.on_whoami, MEMBERS, "查看我的身份和负责的村", aliases=("我是谁",)),
        Route("ask", qa.on_ask, EVERYONE, "问换届政策", "问题", aliases=("问",)),
        Route("law", qa.on_law, EVERYONE, "查法律条文", "法律名 条号", aliases=("法条",)),
        Route("report", guided.on_report_command, REPORTERS, "按步骤填写日报", aliases=("日报",)),
        Route("cancel", guided.on_cancel, EVERYONE, "退出正在填写的内容", aliases=("取消",)),
        Route("undo", reports.on_undo, REPORTERS, "撤回我刚报的报告", aliases=("撤回",)),
        Route("mine", progress.on_mine, REPORTERS, "我负责的村今天报了没有", aliases=("我的",)),
        Route("progress", progress.on_progress, MEMBERS - {"resident"}, "查看某村的换届进度", "村名", aliases=("进度",)),
        Route("deadlines", reminders_cmd.on_deadlines, MEMBERS - {"resident"}, "查看接下来的换届时限", aliases=("时限",)),
        Route("pause", reminders_cmd.on_pause, REPORTERS, "请假期间暂停提醒", "YYYY-MM-DD", aliases=("请假",)),
        Route("remind", reminders_cmd.on_remind, ADMINS, "立即发送未报提醒", "now"),
        Route("digest", digest_cmd.on_digest, LEADERS, "查看换届进度汇总", "[乡镇名] [日期]", aliases=("汇总",)),
        Route("export", digest_cmd.on_export, LEADERS, "导出进度Excel表", "[乡镇名] [2026-W47]", aliases=("导出",)),
        Route("bindgroup", core.on_bindgroup, LEADERS, "把本群绑定到乡镇(街道)", "乡镇名"),
        Route("code", core.on_code, ADMINS, "给某人生成一次性绑定码", "姓名"),
        Route("unanswered", qa.on_unanswered, ADMINS, "查看手册没能回答的问题"),
    ]
    text_handlers = [core.on_bot_added, guided.on_guided_text, reports.on_report_text, qa.on_question_text]
    callbacks = {
        "rv": reports.on_village_choice,
        "gr": guided.on_guided_choice,
        "pg": progress.on_progress_choice,
        "qa": qa.on_suggestion,
        "law": qa.on_law_for_entry,
    }
    return Router(routes, text_handlers, callbacks)
