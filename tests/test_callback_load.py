"""The WeCom callback endpoint under a short load (benchmarks/callback_load.py): the real ASGI app under
uvicorn in its own process, encrypted report callbacks at a steady rate with about 5% WeCom retries, on
SQLite and PostgreSQL. What is asserted is exactly-once storage, not timing: the figures belong to the
benchmark (`python benchmarks/callback_load.py`)."""

from __future__ import annotations

import pytest

from benchmarks.callback_load import run_load


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_every_report_is_stored_exactly_once_under_load(db_url):
    result = run_load(rate=120, seconds=2, db_url=db_url)
    assert result["callbacks_sent"] == 240 and result["callbacks_ok"] == 240
    assert result["retries_sent"] > 0  # some callbacks repeat an earlier MsgId, as WeCom's retries do
    assert result["reports_stored"] == result["distinct_reports_sent"] == 240 - result["retries_sent"]
    assert result["duplicates"] == 0 and result["lost"] == 0
    assert result["confirmations_queued"] == result["reports_stored"]  # one confirmation each, none doubled
