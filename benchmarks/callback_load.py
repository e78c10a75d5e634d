"""Load on the WeCom callback endpoint (issue 9, item 3): the real ASGI app under uvicorn on loopback, in its
own process, takes encrypted report callbacks at a steady rate; every report must be stored exactly once.

    python benchmarks/callback_load.py [--rate 300] [--seconds 30] [--quick] [--postgres [URL]] [--json]

The generator seals every callback before the timed phase (wechatpy, the same AES scheme WeCom uses), each
a distinct report from a roster cadre, and re-sends about 5% of them as WeCom's retries of an earlier MsgId.
It prints the achieved rate, p50/p99 latency of the callback's answer, callbacks sent, reports stored and
duplicates (must be 0). The database is a temporary SQLite file unless --postgres names a server (default
HUANJIE_TEST_POSTGRES_URL); confirmations stay queued in the outbox (no WeCom API is called).
`run_load(rate, seconds, db_url)` returns the same figures as a dict (bot/bench.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CORP_ID = "wwbenchmark0000001"
AGENT_ID = "1000002"
TOKEN = "benchToken2026"
AES_KEY = "QUloWLFOg8pnMtZG1fGGG/LX/mel/9C0Oilp6CrfC7c"
RETRY_SHARE = 0.05
KEEP_ALIVE = 3.0  # seconds a connection is reused (uvicorn closes idle ones after 5)
READY = "ready"


def percentile(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * (len(ordered) - 1)))))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _settings(db_url: str):
    from bot.settings import Settings

    return Settings(database_url=db_url, wecom_corp_id=CORP_ID, wecom_agent_id=AGENT_ID, wecom_token=TOKEN,
                    wecom_aes_key=AES_KEY, scheduler=False)


# ---------------------------------------------------------------- the server process


def warm_up(deps) -> None:
    """What the first report would otherwise pay for: the roster index and the parser's tables."""
    from handlers.report_parser import parse_report

    roster = deps.roster()
    village = roster.villages[0].name if roster.villages else "前进村"
    parse_report(f"{village} 选民登记已完成，登记选民100人", deps.today(), roster)


def serve(db_url: str, port: int) -> None:
    """The bot's HTTP server as `huanjie run` builds it for WeCom, plus a drain endpoint for the generator."""
    import uvicorn
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from bot.app import build_deps
    from bot.http import build_http_app
    from bot.platforms.wechat import wechat_http_routes
    from reminders.outbox import Sender

    deps = build_deps(_settings(db_url))
    sender = Sender(deps)
    deps.extras["sender"] = sender
    routes = wechat_http_routes(deps, sender)
    adapter = deps.extras["wecom"]
    warm_up(deps)

    async def drain(_request):
        started = time.perf_counter()
        await adapter.drain()
        return JSONResponse({"drain_s": round(time.perf_counter() - started, 2)})

    app = build_http_app(deps, [*routes, Route("/__bench/drain", drain, methods=["POST"])])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False,
                            backlog=4096)
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        print(READY, flush=True)
        await task

    asyncio.run(main())


# ---------------------------------------------------------------- the generator


def prepare(db_url: str) -> list[tuple[str, str]]:
    """Migrate, load the demo roster, link each cadre to a WeCom userid; (userid, village) pairs to report."""
    from bot.app import build_deps
    from bot.demo import load_demo
    from storage.models import CADRE

    deps = build_deps(_settings(db_url))
    deps.db.upgrade()
    load_demo(deps)
    pairs = []
    with deps.uow() as uow:
        for i, person in enumerate(uow.persons.with_role(CADRE)):
            userid = f"cadre{i:03d}"
            uow.identities.link("wecom", userid, person, deps.clock.now())
            pairs += [(userid, v.name) for v in uow.persons.assigned_villages(person.id)]
        uow.commit()
    deps.db.dispose()
    return pairs


def seal_all(pairs: list[tuple[str, str]], total: int, seed: int = 3) -> tuple[list[tuple[str, bytes]], int]:
    """(query, body) for every send, sealed in advance; about 5% repeat an earlier message (a WeCom retry)."""
    from wechatpy.enterprise.crypto import WeChatCrypto

    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    rnd = random.Random(seed)
    stages = ["选民登记进行中，已登记选民{n}人", "选民登记已完成，登记选民{n}人", "候选人提名进行中，已推荐{m}人",
              "选民榜已张贴，登记选民{n}人"]
    sends: list[tuple[str, bytes]] = []
    distinct = 0
    timestamp = str(int(time.time()))
    for i in range(total):
        if sends and rnd.random() < RETRY_SHARE:
            sends.append(sends[rnd.randrange(len(sends))])
            continue
        userid, village = pairs[distinct % len(pairs)]
        text = f"{village} " + stages[distinct % len(stages)].format(n=800 + distinct % 900, m=3 + distinct % 5)
        plain = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{userid}]]></FromUserName>"
                 f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[{text}]]></Content><MsgId>{7_000_000_000_000_000_000 + i}</MsgId>"
                 f"<AgentID>{AGENT_ID}</AgentID></xml>")
        nonce = f"{rnd.getrandbits(40):x}"
        sealed = crypto.encrypt_message(plain, nonce, timestamp)
        encrypt = sealed.split("<Encrypt><![CDATA[", 1)[1].split("]]>", 1)[0]
        signature = sealed.split("<MsgSignature><![CDATA[", 1)[1].split("]]>", 1)[0]
        body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[{AGENT_ID}]]></AgentID>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>").encode()
        qs = urlencode({"msg_signature": signature, "timestamp": timestamp, "nonce": nonce}, quote_via=quote, safe="")
        sends.append((qs, body))
        distinct += 1
    return sends, distinct


class _Connection:
    """One keep-alive HTTP/1.1 connection to the server, written and read by hand: a client library's
    own bookkeeping would cost more CPU than the server's answer and skew the figures."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.used = time.monotonic()

    async def post(self, request: bytes) -> int:
        self.writer.write(request)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if length:
            await self.reader.readexactly(length)
        return int(status_line.split()[1])


def _request(path: str, body: bytes) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def fire(host: str, port: int, sends: list[tuple[str, bytes]], rate: float) -> dict:
    """Send at a steady `rate` (open loop: a slow answer never delays the next send); each send's latency
    is from writing the request to reading the whole answer."""
    requests = [_request(f"/wecom/callback?{qs}", body) for qs, body in sends]
    idle: list[_Connection] = []
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def connection() -> tuple[_Connection, bool]:
        while idle:
            conn = idle.pop()
            if time.monotonic() - conn.used < KEEP_ALIVE:
                return conn, True
            conn.writer.close()  # the server closes idle connections after a few seconds
        return _Connection(*await asyncio.open_connection(host, port)), False

    async def one(request: bytes) -> None:
        started = time.perf_counter()
        status = 0
        for _attempt in range(2):  # a kept-alive connection the server just closed: once more on a new one
            conn, reused = await connection()
            try:
                status = await conn.post(request)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
                conn.writer.close()
                if reused:
                    continue
                break
            conn.used = time.monotonic()
            idle.append(conn)
            break
        latencies.append(time.perf_counter() - started)
        statuses[status] = statuses.get(status, 0) + 1

    tasks = []
    start = time.perf_counter()
    for i, request in enumerate(requests):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request)))
    sent_s = time.perf_counter() - start
    await asyncio.gather(*tasks)
    conn = idle.pop() if idle else _Connection(*await asyncio.open_connection(host, port))
    conn.writer.write(_request("/__bench/drain", b""))
    await conn.reader.readline()
    headers = {}
    while (line := await conn.reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    drain = json.loads(await conn.reader.readexactly(int(headers[b"content-length"])))
    for c in [conn, *idle]:
        c.writer.close()
    return {"latencies": latencies, "statuses": statuses, "sent_s": sent_s, **drain}


def count_reports(db_url: str) -> tuple[int, int, int]:
    """(report rows from WeCom, distinct WeCom messages among them, confirmations queued)."""
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Outbox, Report

    db = Database(_settings(db_url).db_url)
    with db.uow() as uow:
        rows = uow.session.scalar(select(func.count()).select_from(Report).where(Report.platform == "wecom"))
        distinct = uow.session.scalar(select(func.count(func.distinct(Report.message_id))).where(Report.platform == "wecom"))
        queued = uow.session.scalar(select(func.count()).select_from(Outbox).where(Outbox.platform == "wecom"))
    db.dispose()
    return rows or 0, distinct or 0, queued or 0


def run_load(rate: float = 300, seconds: float = 30, db_url: str | None = None) -> dict:
    """Start the server process on `db_url` (default: a temporary SQLite file), fire `rate` callbacks a second
    for `seconds`, wait until every acknowledged callback is handled, and return the figures."""
    tmp = None
    if not db_url:
        tmp = tempfile.TemporaryDirectory(prefix="huanjie-load-")
        db_url = f"sqlite:///{Path(tmp.name) / 'load.db'}"
    try:
        pairs = prepare(db_url)
        total = max(1, int(rate * seconds))
        sends, distinct = seal_all(pairs, total)
        port = _free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", "--db-url", db_url,
                                 "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env, cwd=ROOT)
        try:
            line = proc.stdout.readline().strip()
            if line != READY:
                raise RuntimeError(f"the server did not start: {line} {proc.stderr.read()[-2000:]}")
            outcome = asyncio.run(fire("127.0.0.1", port, sends, rate))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        rows, stored, queued = count_reports(db_url)
    finally:
        if tmp is not None:
            tmp.cleanup()
    latencies = outcome["latencies"]
    ok = outcome["statuses"].get(200, 0)
    return {
        "database": "postgresql" if db_url.startswith("postgres") else "sqlite",
        "rate_target": rate,
        "rate_achieved": round(len(sends) / outcome["sent_s"], 1) if outcome["sent_s"] else 0.0,
        "seconds": seconds,
        "callbacks_sent": len(sends),
        "callbacks_ok": ok,
        "callbacks_failed": len(sends) - ok,
        "retries_sent": len(sends) - distinct,
        "distinct_reports_sent": distinct,
        "reports_stored": stored,
        "duplicates": rows - stored,
        "lost": distinct - stored,
        "confirmations_queued": queued,
        "p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
        "max_ms": round(max(latencies) * 1000, 1) if latencies else 0.0,
        "drain_s": outcome.get("drain_s"),
    }


def _pg_database(url: str) -> tuple[str, str]:
    """A fresh database on the PostgreSQL server at `url`: (its URL, its name)."""
    from sqlalchemy import create_engine, text

    url = "postgresql+psycopg://" + url.split("://", 1)[1] if url.startswith(("postgresql://", "postgres://")) else url
    name = f"huanjie_load_{uuid.uuid4().hex[:10]}"
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return f"{url.rsplit('/', 1)[0]}/{name}", name


def _drop_pg_database(server_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    url = server_url
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def format_result(r: dict) -> str:
    return (f"WeCom callback load ({r['database']}): {r['rate_achieved']}/s achieved of {r['rate_target']}/s for "
            f"{r['seconds']}s\n"
            f"  latency p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, max {r['max_ms']} ms\n"
            f"  callbacks sent {r['callbacks_sent']} (retries {r['retries_sent']}), answered 200: {r['callbacks_ok']}\n"
            f"  reports stored {r['reports_stored']} of {r['distinct_reports_sent']}, duplicates {r['duplicates']}, "
            f"lost {r['lost']}; handled {r['drain_s']}s after the last callback; "
            f"{r['confirmations_queued']} confirmations queued")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=300, help="callbacks a second (default 300)")
    parser.add_argument("--seconds", type=float, default=30, help="how long (default 30)")
    parser.add_argument("--quick", action="store_true", help="5 seconds")
    parser.add_argument("--postgres", nargs="?", const=os.environ.get("HUANJIE_TEST_POSTGRES_URL", ""), default=None,
                        metavar="URL", help="PostgreSQL server (default HUANJIE_TEST_POSTGRES_URL) instead of SQLite")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.db_url, args.port)
        return 0
    seconds = 5 if args.quick else args.seconds
    if args.postgres is not None:
        if not args.postgres:
            print("--postgres needs a URL or HUANJIE_TEST_POSTGRES_URL", file=sys.stderr)
            return 2
        db_url, name = _pg_database(args.postgres)
        try:
            result = run_load(args.rate, seconds, db_url)
        finally:
            _drop_pg_database(args.postgres, name)
    else:
        result = run_load(args.rate, seconds)
    print(json.dumps(result, ensure_ascii=False) if args.json else format_result(result))
    return 0 if result["duplicates"] == 0 and result["lost"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
