"""The independent protocol peers that run on Node (tests/e2e: the telegram-test-api emulator, WeCom's own
@wecom/crypto), shared by the Telegram and WeChat tests.

`require(package, purpose)` installs the pinned packages with `npm ci --prefix tests/e2e` once per test run when
npm is there but they are not, so the README's test command runs the whole suite on a machine with Node. Without
Node (or without the registry) the tests skip with the reason, and fail instead under HUANJIE_CI=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

E2E = Path(__file__).resolve().parent / "e2e"
_npm_tried = False


def _installed(package: str) -> bool:
    return (E2E / "node_modules" / package / "package.json").is_file()


def _npm_ci() -> None:
    global _npm_tried
    if _npm_tried or shutil.which("npm") is None:
        return
    _npm_tried = True
    subprocess.run(["npm", "ci", "--prefix", str(E2E), "--no-audit", "--no-fund"], capture_output=True, timeout=600,
                   check=False)


def missing(package: str, purpose: str) -> str | None:
    """Why the peer cannot run, or None when it can."""
    if shutil.which("node") is None:
        return f"node is not installed ({purpose})"
    if not _installed(package):
        _npm_ci()
    if not _installed(package):
        return f"{package} is not installed: run `npm ci --prefix tests/e2e` (or .ci/setup-extras)"
    return None


def require(package: str, purpose: str) -> None:
    reason = missing(package, purpose)
    if reason:
        if os.environ.get("HUANJIE_CI") == "1":
            pytest.fail(f"{reason}; HUANJIE_CI=1 requires these tests to run")
        pytest.skip(reason)
