"""Logs: JSON lines, no message text, and no secrets or phone numbers even when a library puts them in."""

import io
import json
import logging

import pytest

from bot.logging_setup import JsonFormatter, secret_values
from bot.settings import Settings

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


@pytest.fixture
def log_stream():
    settings = Settings(telegram_token=TOKEN, wecom_aes_key=AES, wecom_secret="wecom-secret-value",
                        wecom_robot_keys={"新营子镇": "robot-key-0001"}, database_url="postgresql://u:dbpass123@h/db")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secret_values(settings)))
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(old)


def test_secrets_and_phones_are_masked(log_stream):
    log = logging.getLogger("httpx")
    log.warning("HTTP Request: POST https://api.telegram.org/bot%s/sendMessage failed", TOKEN)
    log.warning("gettoken corpsecret=wecom-secret-value key=robot-key-0001 aes=%s", AES)
    log.warning("connect postgresql://u:dbpass123@h/db; cadre phone 13800000101")
    out = log_stream.getvalue()
    for secret in (TOKEN, AES, "wecom-secret-value", "robot-key-0001", "dbpass123", "13800000101"):
        assert secret not in out
    assert "138****0101" in out
    for line in out.strip().splitlines():
        assert json.loads(line)["level"] == "warning"


async def test_a_full_scenario_logs_no_text_or_phones(deps, log_stream):
    from reminders.jobs import run_job
    from tests.conftest import talk
    from tests.helpers import at, bind_all

    pytest.importorskip("handlers.report_parser")
    await talk(deps, as_="访客", say="/bind 张三 0101")
    await talk(deps, as_="张三", in_="新营子镇换届工作群", say="前进村 选民登记已完成，登记选民1236人，问题：村民王某某电话13912345678联系不上")
    bind_all(deps)
    run_job(deps, "daily-nudge", at(deps, 2026, 11, 23, 16, 30))
    out = log_stream.getvalue()
    assert "13912345678" not in out and "13800000101" not in out
    assert "联系不上" not in out  # message text is not logged by default
