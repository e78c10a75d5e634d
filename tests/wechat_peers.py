"""Independent peers for the WeChat tests: WeCom's official crypto library (`@wecom/crypto`, run by
node through tests/e2e/wecom_crypto.js) seals the callbacks and opens the replies, and a real HTTP server
on 127.0.0.1 stands in for qyapi.weixin.qq.com / api.weixin.qq.com, recording every request.

Needs node and `npm ci --prefix tests/e2e`; without them the tests skip, unless HUANJIE_CI=1 (then they fail).
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import json
import secrets
import socket
import subprocess
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests import node_peers

E2E = node_peers.E2E
FIXTURE_HANDBOOK = Path(__file__).resolve().parent / "data" / "handbook"
CORP_ID = "ww7c2f0a1b3d5e6f80"
AGENT_ID = "1000002"
WECOM_SECRET = "corp-secret-for-tests-0001"
WECOM_TOKEN = "wecomTokenT3st"
WECOM_KEY = "QUloWLFOg8pnMtZG1fGGG/LX/mel/9C0Oilp6CrfC7c"
MP_APP_ID = "wx5823bf96d3bd56c7"
MP_TOKEN = "mpTokenT3st2026"
MP_KEY = "UWtR3PKPKO0Ubn3vxFap1mSDKoNhMQTpJPjMWTpKt9g"
OTHER_KEY = "er3zWAJCXqqCVqD4MZU7qCJACfuOj6BvbpNewcFXgQo"
MP_ORIGINAL_ID = "gh_3f0e8a1c2b4d"


class WeComCrypto:
    """`@wecom/crypto` in one long-lived node process: a JSON request a line, a JSON answer a line."""

    def __init__(self):
        self.proc = subprocess.Popen(["node", "wecom_crypto.js"], cwd=E2E, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
        self._lock = threading.Lock()

    def ask(self, request: dict | list) -> Any:
        with self._lock:
            self.proc.stdin.write(json.dumps(request, ensure_ascii=False) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"wecom_crypto.js stopped: {self.proc.stderr.read()[-2000:]}")
        return json.loads(line)

    def seal(self, message: str, *, key: str, token: str, receive_id: str, timestamp: str = "1795400000",
             nonce: str = "n0nce") -> dict[str, str]:
        answer = self.ask({"op": "seal", "key": key, "token": token, "timestamp": timestamp, "nonce": nonce,
                           "message": message, "id": receive_id})
        assert "error" not in answer, answer
        return answer

    def seal_many(self, messages: list[str], *, key: str, token: str, receive_id: str, timestamp: str,
                  nonce: str) -> list[dict[str, str]]:
        return self.ask([{"op": "seal", "key": key, "token": token, "timestamp": timestamp, "nonce": nonce,
                          "message": m, "id": receive_id} for m in messages])

    def sign(self, token: str, timestamp: str, nonce: str, encrypted: str) -> str:
        return self.ask({"op": "sign", "token": token, "timestamp": timestamp, "nonce": nonce,
                         "encrypt": encrypted})["signature"]

    def open(self, encrypted: str, key: str) -> dict[str, str]:
        answer = self.ask({"op": "decrypt", "key": key, "encrypt": encrypted})
        assert "error" not in answer, answer
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def unicode_error_ciphertext(peer, crypto, messages: list[str], *, token: str, receive_id: str, timestamp: str,
                             nonce: str) -> str:
    """A message sealed by @wecom/crypto with OTHER_KEY that makes wechatpy's `crypto` (configured with the right
    key) raise a bare UnicodeDecodeError: the wrong-key case that must still be a 403."""
    boxes = peer.seal_many(messages, key=OTHER_KEY, token=token, receive_id=receive_id, timestamp=timestamp,
                           nonce=nonce)
    for box in boxes:
        try:
            crypto.decrypt_message({"Encrypt": box["encrypt"]}, box["signature"], timestamp, nonce)
        except UnicodeDecodeError:
            return box["encrypt"]
        except Exception:  # noqa: BLE001 - other wrong-key failures: try the next message
            continue
    raise AssertionError("no wrong-key ciphertext raised UnicodeDecodeError")


@pytest.fixture(scope="module")
def qa_engine():
    """The Q&A engine over the small fixture handbook (tests/data/handbook) that the adapters answer from."""
    from content.handbook import Handbook, QAEngine

    return QAEngine(Handbook.load(FIXTURE_HANDBOOK))


@pytest.fixture(scope="module")
def peer():
    node_peers.require("@wecom/crypto", "the WeChat crypto tests use WeCom's @wecom/crypto on Node")
    crypto = WeComCrypto()
    yield crypto
    crypto.close()


# ---------------------------------------------------------------- the recording API server


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    json: Any = None
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # form field -> (filename, content)
    status: int = 200
    answer: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """WeCom accepted it: HTTP 200 and errcode 0."""
        return self.status == 200 and self.answer.get("errcode", 0) == 0


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.default).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    files = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        files[name] = (part.get_filename(), part.get_payload(decode=True))
    return files


class RecordingApi:
    """qyapi.weixin.qq.com on 127.0.0.1: answers like WeCom, records every request. `script(path, …)`
    queues the next answers for a path (status, JSON); after them the default answer comes back."""

    def __init__(self):
        self.requests: list[Recorded] = []
        self.scripted: dict[str, deque[tuple[int, dict]]] = defaultdict(deque)
        self.directory: dict[str, dict[str, Any]] = {}  # userid -> user/get answer
        self.tokens = 0
        self.media = 0
        self.url = ""
        self._server = None
        self._thread: threading.Thread | None = None

    def reset(self) -> None:
        self.requests.clear()
        self.scripted.clear()
        self.directory.clear()
        self.tokens = self.media = 0

    def script(self, path: str, *answers: tuple[int, dict]) -> None:
        self.scripted[path].extend(answers)

    def calls(self, path: str, ok_only: bool = False) -> list[Recorded]:
        return [r for r in self.requests if r.path == path and (not ok_only or r.ok)]

    def _default(self, path: str, query: dict[str, str], body: Any) -> dict:
        if path == "/cgi-bin/gettoken":
            self.tokens += 1
            return {"errcode": 0, "errmsg": "ok", "access_token": f"ACCESS_TOKEN_{self.tokens}", "expires_in": 7200}
        if path in ("/cgi-bin/media/upload", "/cgi-bin/webhook/upload_media"):
            self.media += 1
            return {"errcode": 0, "errmsg": "ok", "type": query.get("type", "file"), "media_id": f"MEDIA_{self.media}",
                    "created_at": "1795400000"}
        if path == "/cgi-bin/message/send":
            return {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": secrets.token_hex(8)}
        if path == "/cgi-bin/user/get":
            user = self.directory.get(query.get("userid", ""))
            return {"errcode": 0, "errmsg": "ok", **user} if user else {"errcode": 60111, "errmsg": "userid not found"}
        if path == "/cgi-bin/user/getuserid":
            mobile = (body or {}).get("mobile")
            for userid, user in self.directory.items():
                if user.get("real_mobile") == mobile:
                    return {"errcode": 0, "errmsg": "ok", "userid": userid}
            return {"errcode": 46004, "errmsg": "mobile not found"}
        return {"errcode": 0, "errmsg": "ok"}

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        query = dict(request.query_params)
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        rec = Recorded(request.method, path, query)
        if content_type.startswith("multipart/form-data"):
            rec.files = _multipart(content_type, raw)
        elif raw:
            rec.json = json.loads(raw)
        self.requests.append(rec)
        if self.scripted[path]:
            status, answer = self.scripted[path].popleft()
        else:
            status, answer = 200, self._default(path, query, rec.json)
        rec.status, rec.answer = status, answer
        return JSONResponse(answer, status_code=status)

    def start(self) -> None:
        import uvicorn

        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the recording API server did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def api_server():
    server = RecordingApi()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api(api_server):
    api_server.reset()
    yield api_server
    api_server.reset()


# ---------------------------------------------------------------- callbacks


def xml(**fields: Any) -> str:
    """A flat WeChat XML message; strings in CDATA, numbers bare, as WeChat writes them."""
    parts = []
    for name, value in fields.items():
        parts.append(f"<{name}>{value}</{name}>" if isinstance(value, int) else f"<{name}><![CDATA[{value}]]></{name}>")
    return "<xml>" + "".join(parts) + "</xml>"


def query(**params: str) -> str:
    """A query string percent-encoded the way WeChat sends it (base64 '+', '/', '=' as %2B, %2F, %3D)."""
    return urlencode(params, quote_via=quote, safe="")


def client_for(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bot.example.cn")


async def settle(*adapters, rounds: int = 3) -> None:
    """Let background work finish: adapters drain their queues, then pending callbacks run."""
    for _ in range(rounds):
        for adapter in adapters:
            await adapter.drain()
        await asyncio.sleep(0)
