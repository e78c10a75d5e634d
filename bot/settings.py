"""Settings: read once at start-up from the environment, `.env` and an optional YAML file.

The composition root (`bot.app`) turns them into `Deps`; nothing else reads the environment.
A wrong value stops start-up with one line naming the setting (`SettingsError`).
"""

from __future__ import annotations

import os
import re
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

DEFAULT_DB_PATH = Path("var") / "huanjie.db"


class SettingsError(Exception):
    """A setting is missing or wrong; the message names it and is safe to print."""


class _YamlSource(PydanticBaseSettingsSource):
    """Optional YAML file (`HUANJIE_CONFIG`, default ./huanjie.yaml): keys as in the env without the prefix."""

    def __init__(self, settings_cls: type[BaseSettings]):
        super().__init__(settings_cls)
        path = Path(os.environ.get("HUANJIE_CONFIG", "huanjie.yaml"))
        self.data: dict[str, Any] = {}
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError as exc:
                raise SettingsError(f"HUANJIE_CONFIG: {path} is not valid YAML ({exc.__class__.__name__})") from None
            if not isinstance(loaded, dict):
                raise SettingsError(f"HUANJIE_CONFIG: {path} must be a mapping of setting: value")
            self.data = {str(k).lower().removeprefix("huanjie_"): v for k, v in loaded.items()}

    def get_field_value(self, field, field_name):  # pragma: no cover - required by the ABC
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.data.items() if k in self.settings_cls.model_fields}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HUANJIE_", env_file=".env", extra="ignore")

    database_url: str = Field(default="", description="SQLAlchemy URL; default SQLite ./var/huanjie.db")
    timezone: str = "Asia/Shanghai"
    log_level: str = "INFO"
    log_text: bool = False  # include message text in logs (off: privacy)
    admins: list[str] = Field(default_factory=list)  # names or phones granted admin at start

    # scheduling (issue: reminders)
    daily_nudge_time: time = time(16, 30)
    escalation_times: list[time] = Field(default_factory=lambda: [time(18, 0), time(20, 0)])
    weekly_nudge_weekday: int = 4  # Friday (Monday = 0)
    weekly_nudge_time: time = time(15, 0)
    daily_digest_time: time = time(20, 30)
    weekly_digest_weekday: int = 5  # Saturday
    weekly_digest_time: time = time(10, 0)
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    work_weekends: bool = False  # campaign periods that work weekends
    grace_seconds: int = 3600
    plan_file: str = ""
    scheduler: bool = True

    # HTTP server (webhooks)
    http_host: str = "127.0.0.1"
    http_port: int = 8080

    # Telegram
    telegram_token: str = ""
    telegram_webhook_url: str = ""
    telegram_secret: str = ""
    telegram_base_url: str = ""

    # WeCom (企业微信) self-built app and group robots
    wecom_corp_id: str = ""
    wecom_agent_id: str = ""
    wecom_secret: str = ""
    wecom_token: str = ""
    wecom_aes_key: str = ""
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    wecom_robot_keys: dict[str, str] = Field(default_factory=dict)  # township name -> robot key
    wecom_users: dict[str, str] = Field(default_factory=dict)  # WeCom userid -> roster mobile (identity mapping)
    wecom_bot_token: str = ""  # smart robot (智能机器人) callback; empty: the app's token and key
    wecom_bot_aes_key: str = ""

    # WeChat Official Account (公众号)
    mp_app_id: str = ""
    mp_app_secret: str = ""
    mp_token: str = ""
    mp_aes_key: str = ""
    mp_api_base: str = "https://api.weixin.qq.com"

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings):
        return (init_settings, env_settings, dotenv_settings, _YamlSource(settings_cls), file_secret_settings)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}, e.g. Asia/Shanghai") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, value: str) -> str:
        if value and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("wecom_aes_key", "wecom_bot_aes_key", "mp_aes_key")
    @classmethod
    def _aes_key(cls, value: str) -> str:
        value = value.strip()
        if value and len(value) != 43:
            raise ValueError(f"EncodingAESKey must be 43 characters, got {len(value)}")
        if value and not re.fullmatch(r"[A-Za-z0-9+/]{43}", value):
            raise ValueError("EncodingAESKey must be 43 letters and digits, as the admin console shows it")
        return value

    @field_validator("weekly_nudge_weekday", "weekly_digest_weekday")
    @classmethod
    def _weekday(cls, value: int) -> int:
        if not 0 <= value <= 6:
            raise ValueError("weekday must be 0 (Monday) to 6 (Sunday)")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_url(self) -> str:
        """The database URL, normalised: psycopg 3 for PostgreSQL, a file path under ./var by default."""
        url = self.database_url or f"sqlite:///{DEFAULT_DB_PATH}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def platforms(self) -> list[str]:
        found = []
        if self.telegram_token:
            found.append("telegram")
        if self.wecom_corp_id or self.wecom_robot_keys:
            found.append("wecom")
        if self.mp_app_id:
            found.append("mp")
        return found


def load_settings(**overrides: Any) -> Settings:
    """Load settings or raise `SettingsError` with one line naming the first bad setting."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = "HUANJIE_" + "_".join(str(p) for p in err["loc"] if isinstance(p, str)).upper()
        msg = err["msg"].removeprefix("Value error, ")
        raise SettingsError(f"{name}: {msg}") from None
