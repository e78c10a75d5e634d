"""Structured logs: one JSON object per line, ids but no message text, secrets masked."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

_PHONE = re.compile(r"(?<!\d)(1\d{2})\d{4}(\d{4})(?!\d)")


class JsonFormatter(logging.Formatter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 6]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return _PHONE.sub(r"\1****\2", text)

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        for key in ("platform", "chat", "village", "job", "key", "status"):
            if hasattr(record, key):
                data[key] = getattr(record, key)
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(data, ensure_ascii=False, default=str))


def secret_values(settings) -> list[str]:
    names = ("telegram_token", "telegram_secret", "wecom_secret", "wecom_token", "wecom_aes_key",
             "wecom_bot_token", "wecom_bot_aes_key", "mp_app_secret", "mp_token", "mp_aes_key")
    values = [getattr(settings, n, "") for n in names]
    values += list(getattr(settings, "wecom_robot_keys", {}).values())
    if "@" in settings.db_url and ":" in settings.db_url.split("@")[0].split("//")[-1]:
        values.append(settings.db_url.split("@")[0].split("//")[-1].split(":", 1)[1])
    return values


def setup_logging(settings, to_file: Path | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    if to_file is not None:
        to_file.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(to_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secret_values(settings)))
    root.addHandler(handler)
    root.setLevel(getattr(logging, str(settings.log_level).upper(), logging.INFO))
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "alembic", "jieba", "telegram.ext"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
