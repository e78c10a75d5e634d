"""Settings: defaults, and one clear line naming the setting when a value is wrong."""

import subprocess
import sys

import pytest

from bot.settings import SettingsError, load_settings


def test_defaults_are_sqlite_file_and_shanghai(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    for key in ("HUANJIE_DATABASE_URL", "HUANJIE_TIMEZONE"):
        monkeypatch.delenv(key, raising=False)
    s = load_settings()
    assert s.db_url == "sqlite:///var/huanjie.db"
    assert str(s.tz) == "Asia/Shanghai"
    assert s.platforms == []


@pytest.mark.parametrize(
    "env, name",
    [
        ({"HUANJIE_TIMEZONE": "Mars/Base"}, "HUANJIE_TIMEZONE"),
        ({"HUANJIE_DATABASE_URL": "mysql://x"}, "HUANJIE_DATABASE_URL"),
        ({"HUANJIE_WECOM_AES_KEY": "short"}, "HUANJIE_WECOM_AES_KEY"),
        ({"HUANJIE_HTTP_PORT": "eighty"}, "HUANJIE_HTTP_PORT"),
        ({"HUANJIE_DAILY_NUDGE_TIME": "25:99"}, "HUANJIE_DAILY_NUDGE_TIME"),
    ],
)
def test_bad_setting_names_the_setting(monkeypatch, tmp_path, env, name):
    monkeypatch.chdir(tmp_path)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value).startswith(name + ":")
    assert "\n" not in str(err.value)


def test_yaml_file_is_read(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "huanjie.yaml").write_text("daily_nudge_time: '17:00'\nhttp_port: 9000\n", encoding="utf-8")
    s = load_settings()
    assert s.http_port == 9000 and s.daily_nudge_time.hour == 17


def test_env_beats_yaml(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "huanjie.yaml").write_text("http_port: 9000\n", encoding="utf-8")
    monkeypatch.setenv("HUANJIE_HTTP_PORT", "9100")
    assert load_settings().http_port == 9100


def test_cli_prints_one_line_without_traceback(tmp_path):
    env = {"HUANJIE_TIMEZONE": "Nowhere/Land", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "db", "status"], capture_output=True, text=True, cwd=tmp_path,
        env={**env, "PYTHONPATH": str(__import__("pathlib").Path(__file__).resolve().parent.parent)},
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "HUANJIE_TIMEZONE" in lines[0]
