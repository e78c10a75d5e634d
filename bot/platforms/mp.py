"""WeChat Official Account (公众号) adapter: residents' questions in, passive answers out.

/mp/callback: GET echostr verification (signature over Token, timestamp, nonce), POST in plaintext,
compatibility or safe (AES) mode. Each message goes through the router inside WeChat's five-second
window and the answer is the HTTP response itself (a passive reply). An Official Account cannot write
to a resident later (48-hour rule), so nothing here registers an outbox transport: no reminders, no
digests. Residents are residents unless they bind themselves to the roster with /bind.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.delivery import first_delivery, reply_key
from bot.messages import ChatRef, Incoming, Reply, UserRef
from bot.platforms.wechat_callback import (
    AesCallback,
    CallbackRejected,
    busy,
    check_signature,
    delivery_key,
    parse_xml,
    passive_text,
    query_params,
    read_body,
    refused,
    text_reply_xml,
)
from reminders.outbox import enqueue, payload_to_reply

log = logging.getLogger(__name__)

PLATFORM = "mp"
CALLBACK_PATH = "/mp/callback"
PASSIVE_LIMIT = 2048  # bytes: a passive text reply's Content
ANSWER_WITHIN = 4.0  # seconds: WeChat gives up after five and asks again (three times)
MAX_REPLIES = 10  # replies stored for one message, looked up again when WeChat retries
IGNORED_EVENTS = frozenset({"unsubscribe", "view", "view_miniprogram", "location", "templatesendjobfinish"})


def mp_incoming(data: dict[str, str]) -> Incoming | None:
    """A plaintext message → Incoming for the router; None for events and media (answered here)."""
    openid = data.get("FromUserName", "")
    if not openid or data.get("MsgType") != "text" or not data.get("Content", "").strip():
        return None
    return Incoming(chat=ChatRef(PLATFORM, openid, False), sender=UserRef(openid), text=data["Content"],
                    message_id=delivery_key(data), raw=data)


class MpAdapter:
    """The Official Account's server configuration (服务器配置) endpoint."""

    def __init__(self, deps, token: str, crypto: AesCallback | None = None, answer_within: float = ANSWER_WITHIN):
        self.deps = deps
        self.token = token
        self.crypto = crypto
        self.answer_within = answer_within
        self.tasks: set[asyncio.Task] = set()

    def routes(self) -> list[Route]:
        return [Route(CALLBACK_PATH, self.callback, methods=["GET", "POST"])]

    async def callback(self, request: Request) -> Response:
        params = query_params(request)
        ts, nonce = params.get("timestamp"), params.get("nonce")
        encrypted = params.get("encrypt_type", "raw").lower() == "aes"
        try:
            if ts is None or nonce is None:
                raise CallbackRejected("missing timestamp or nonce")
            check_signature(params.get("signature"), self.token, ts, nonce)
            if request.method == "GET":  # 服务器配置: WeChat checks the URL with a plain echostr in every mode
                return PlainTextResponse(params.get("echostr", ""))
            outer = parse_xml(await read_body(request))
            if encrypted:  # safe mode, or compatibility mode (the plaintext copy beside Encrypt is ignored)
                if self.crypto is None:
                    raise CallbackRejected("an encrypted message but HUANJIE_MP_AES_KEY is not set")
                data = parse_xml(self.crypto.open(params.get("msg_signature"), ts, nonce, outer.get("Encrypt")))
            elif "MsgType" not in outer:
                raise CallbackRejected("no MsgType in a plaintext message")
            else:
                data = outer
            if not data.get("FromUserName") or not data.get("ToUserName"):
                raise CallbackRejected("a message without FromUserName/ToUserName")
        except CallbackRejected as exc:
            return refused("official account", PLATFORM, exc)
        try:
            text = await self.answer(data)
        except self.deps.db_errors:
            return busy(PLATFORM)
        if not text:
            return PlainTextResponse("success")  # WeChat's "nothing to say"
        xml = text_reply_xml(data["FromUserName"], data["ToUserName"], text, int(time.time()))
        if encrypted:
            xml = self.crypto.seal_xml(xml, nonce, str(int(time.time())))
        return Response(xml, media_type="application/xml")

    async def answer(self, data: dict[str, str]) -> str:
        """The passive answer to one message: the router's replies, stored under the message's key so a
        WeChat retry (same MsgId) gets the same answer without asking the router twice."""
        key = delivery_key(data)
        msg = mp_incoming(data) or Incoming(
            chat=ChatRef(PLATFORM, data["FromUserName"], False), sender=UserRef(data["FromUserName"]), text="",
            message_id=key, raw=data)
        if key is not None and not first_delivery(self.deps, PLATFORM, key):
            log.info("official account retry answered from storage", extra={"platform": PLATFORM})
            return self._render(self._stored(msg))
        work = asyncio.ensure_future(self._dispatch_and_store(msg, data))
        self.tasks.add(work)
        work.add_done_callback(self.tasks.discard)
        done, _ = await asyncio.wait({work}, timeout=self.answer_within)
        if not done:  # too slow for this request: WeChat asks again and gets the stored answer
            log.warning("official account answer not ready within the window", extra={"platform": PLATFORM})
            return ""
        return self._render(work.result())

    async def _dispatch_and_store(self, msg: Incoming, data: dict[str, str]) -> list[Reply]:
        replies = await self.replies_for(msg, data)
        if replies and msg.message_id:
            try:
                self._store(msg, replies)
            except Exception:  # the resident still gets the answer; only a retry would miss it
                log.exception("official account answer could not be stored", extra={"platform": PLATFORM})
        return replies

    async def replies_for(self, msg: Incoming, data: dict[str, str]) -> list[Reply]:
        kind, event = data.get("MsgType", ""), data.get("Event", "").lower()
        if kind == "event":
            if event == "subscribe":
                return [Reply("mp_welcome")]
            return []  # unsubscribe, menu clicks, scans, location reports: nothing to answer
        if kind != "text":
            return [Reply("mp_text_only")]
        if not msg.text.strip():
            return []
        replies = await self.deps.router.dispatch(msg, self.deps)
        if any(r.attachments for r in replies):
            replies.append(Reply("mp_no_files"))
        return replies

    def _render(self, replies: list[Reply]) -> str:
        return passive_text(self.deps, replies, "text", PASSIVE_LIMIT) if replies else ""

    def _store(self, msg: Incoming, replies: list[Reply]) -> None:
        """The answer as outbox rows already sent (passively): the record of what the resident was told."""
        now = self.deps.clock.now()
        with self.deps.uow() as uow:
            for i, reply in enumerate(replies[:MAX_REPLIES]):
                key = reply_key(msg, i)
                if enqueue(uow, key, PLATFORM, msg.chat.id, reply, now, now):
                    row = uow.outbox.by_key(key)
                    row.status, row.sent_at, row.attempts = "sent", now, 1
            uow.commit()

    def _stored(self, msg: Incoming) -> list[Reply]:
        replies = []
        with self.deps.uow() as uow:
            for i in range(MAX_REPLIES):
                row = uow.outbox.by_key(reply_key(msg, i))
                if row is None:
                    break
                replies.append(payload_to_reply(row.payload))
        return replies

    async def drain(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)


def build_mp(deps) -> MpAdapter:
    settings = deps.settings
    crypto = None
    if settings.mp_aes_key:
        crypto = AesCallback(settings.mp_token, settings.mp_aes_key, settings.mp_app_id, wecom=False)
    adapter = MpAdapter(deps, settings.mp_token, crypto)
    deps.extras["mp"] = adapter
    return adapter


__all__ = ["MpAdapter", "build_mp", "delivery_key", "mp_incoming"]
