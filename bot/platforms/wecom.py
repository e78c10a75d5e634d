"""WeCom (企业微信) adapter. The self-built app (自建应用) talks 1:1 with cadres and leaders: its encrypted
callback is acknowledged at once and handled by a worker (`Incoming` → router), replies leave through the
outbox (`bot.delivery.respond` → `WeComAppTransport`, message/send). Township groups are reached through
group-robot webhooks (`WeComRobotTransport`, send only). A cadre who @-s the smart robot (智能机器人) in a
group gets a passive, encrypted stream reply. Outbound calls use httpx, never wechatpy's blocking client.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.delivery import first_delivery, respond
from bot.messages import Attachment, ChatRef, Incoming, Mention, Reply, UserRef
from bot.platforms.wechat_callback import (
    AesCallback,
    CallbackRejected,
    busy,
    delivery_key,
    numbered_choices,
    parse_xml,
    passive_text,
    query_params,
    read_body,
    refused,
)
from bot.rendering import split_message, utf8_len
from bot.router import split_command
from reminders.outbox import PermanentError, RateLimiter, RetryAfter, TransientError, reply_to_payload
from storage.models import TOWNSHIP_KINDS

log = logging.getLogger(__name__)

PLATFORM = "wecom"
ROBOT_PLATFORM = "wecom_robot"
CALLBACK_PATH = "/wecom/callback"
BOT_CALLBACK_PATH = "/wecom/bot/callback"
GROUP_PREFIX = "group:"  # never a target of the app: it has no group chats
APP_LIMIT = 2048  # bytes: message/send text and markdown content
ROBOT_LIMIT = 4096  # bytes: group robot markdown content
ROBOT_TEXT_LIMIT = 2048
STREAM_LIMIT = 20_480  # bytes: smart robot stream content
IMAGE_MAX = 2 * 1024 * 1024  # group robot image message, before base64
TOKEN_ERRORS = frozenset({40014, 42001})  # invalid / expired access_token
FREQUENCY_LIMIT = 45009
BUSY = -1
BATCH = 1000  # message/send: at most 1000 userids joined by '|'
TOKEN_MARGIN = 300.0  # seconds: refresh a little before WeCom's expires_in
IDENTITY_RECHECK = 3600.0  # seconds between directory look-ups of an unmatched userid
BOT_ANSWER_WITHIN = 3.0  # seconds: past this the smart robot gets an open stream and refreshes for the rest
STREAM_TTL = 420.0  # WeCom refreshes a stream for at most six minutes
BURST_GAP = 0.2  # seconds: callbacks closer than this are a burst
BURST_YIELD = 0.25  # during a burst, after each message the loop gets a quarter of its time for callbacks alone
STEPS_TTL = 6 * 3600.0  # how long a half-sent message remembers what already went out
KEY_SHAPE = re.compile(r"^[0-9a-fA-F-]{20,64}$")
LEADING_MENTION = re.compile(r"^\s*@\S+\s*")
# Replies that already tell an unknown user how to bind: no extra note for them.
EXPLAINS_BINDING = frozenset({"report_unbound", "not_bound", "welcome", "bind_usage", "bind_failed", "bind_ok",
                              "bind_already", "bind_code_invalid", "wecom_unknown_user"})


# ---------------------------------------------------------------- HTTP and errcodes


async def request_json(client: httpx.AsyncClient, method: str, url: str, **kwargs) -> dict[str, Any]:
    """One API call. Errors never carry the URL: it holds the access token or the robot key."""
    try:
        resp = await client.request(method, url, **kwargs)
    except httpx.TimeoutException:
        raise TransientError("WeCom API timed out") from None
    except httpx.HTTPError as exc:
        raise TransientError(f"WeCom API unreachable ({exc.__class__.__name__})") from None
    if resp.status_code == 429:
        raise RetryAfter(60, "HTTP 429")
    if resp.status_code >= 500:
        raise TransientError(f"WeCom API answered HTTP {resp.status_code}")
    if resp.status_code >= 400:
        raise PermanentError(f"WeCom API answered HTTP {resp.status_code}")
    try:
        data = resp.json()
    except ValueError:
        raise TransientError("WeCom API answered something other than JSON") from None
    if not isinstance(data, dict):
        raise TransientError("WeCom API answered something other than a JSON object")
    return data


def errcode(data: dict[str, Any]) -> int:
    try:
        return int(data.get("errcode", 0))
    except (TypeError, ValueError):
        return BUSY


def check_errcode(data: dict[str, Any], what: str) -> None:
    """45009 → wait a minute; -1 (system busy) → try again; any other non-zero errcode → give up."""
    code = errcode(data)
    if code == 0:
        return
    detail = f"{what}: errcode {code} {str(data.get('errmsg', ''))[:120]}"
    if code == FREQUENCY_LIMIT:
        raise RetryAfter(60, detail)
    if code == BUSY:
        raise TransientError(detail)
    raise PermanentError(detail)


class WeComApi:
    """The self-built app's server API. The access token (/cgi-bin/gettoken) is cached until it expires
    and fetched again once when WeCom calls it invalid (40014) or expired (42001)."""

    def __init__(self, client: httpx.AsyncClient, base: str, corp_id: str, secret: str, agent_id: str):
        self.client = client
        self.base = base.rstrip("/")
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id: int | str = int(agent_id) if str(agent_id).isdigit() else agent_id
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def access_token(self, stale: str | None = None) -> str:
        async with self._lock:
            if self._token and self._token != stale and time.monotonic() < self._expires:
                return self._token
            data = await request_json(self.client, "GET", f"{self.base}/cgi-bin/gettoken",
                                      params={"corpid": self.corp_id, "corpsecret": self.secret})
            check_errcode(data, "gettoken")
            token = data.get("access_token")
            if not token:
                raise TransientError("gettoken answered without access_token")
            self._token = str(token)
            self._expires = time.monotonic() + max(int(data.get("expires_in", 7200)) - TOKEN_MARGIN, 60.0)
            return self._token

    async def call(self, method: str, path: str, *, params: dict | None = None, **kwargs) -> dict[str, Any]:
        token = await self.access_token()
        data = await request_json(self.client, method, f"{self.base}{path}",
                                  params={**(params or {}), "access_token": token}, **kwargs)
        if errcode(data) in TOKEN_ERRORS:  # revoked or expired early: one fresh token, one more try
            token = await self.access_token(stale=token)
            data = await request_json(self.client, method, f"{self.base}{path}",
                                      params={**(params or {}), "access_token": token}, **kwargs)
        check_errcode(data, path)
        return data

    async def send_message(self, touser: str, msgtype: str, body: dict[str, Any]) -> dict[str, Any]:
        """message/send as WeCom documents it: markdown has no `safe` field, the others send safe=0."""
        payload: dict[str, Any] = {"touser": touser, "msgtype": msgtype, "agentid": self.agent_id, msgtype: body}
        if msgtype != "markdown":
            payload["safe"] = 0
        return await self.call("POST", "/cgi-bin/message/send", json=payload)

    async def upload_media(self, kind: str, att: Attachment) -> str:
        files = {"media": (att.filename, att.content, "application/octet-stream")}
        data = await self.call("POST", "/cgi-bin/media/upload", params={"type": kind}, files=files)
        if not data.get("media_id"):
            raise TransientError("media/upload answered without media_id")
        return str(data["media_id"])

    async def get_user(self, userid: str) -> dict[str, Any]:
        return await self.call("GET", "/cgi-bin/user/get", params={"userid": userid})

    async def userid_by_mobile(self, mobile: str) -> str | None:
        try:
            data = await self.call("POST", "/cgi-bin/user/getuserid", json={"mobile": mobile})
        except PermanentError:
            return None  # 46004: nobody in the corp has this mobile
        return str(data.get("userid") or "") or None


class SentSteps:
    """What one outbox message already put on screen. A message is several API calls (text, choices,
    each attachment); when one fails the outbox retries the whole message, and this makes the retry
    send only the rest, so nobody reads the same text twice. Forgotten once the message is complete."""

    def __init__(self, ttl: float = STEPS_TTL):
        self.ttl = ttl
        self._done: dict[str, tuple[float, set[str]]] = {}

    @staticmethod
    def key(target: str, text: str, reply: Reply) -> str:
        payload = json.dumps(reply_to_payload(reply), sort_keys=True, ensure_ascii=False, default=str)
        return hashlib.sha256(f"{target}\x00{text}\x00{payload}".encode()).hexdigest()

    async def run(self, key: str, step: str, send: Callable[[], Awaitable[Any]]) -> None:
        now = time.monotonic()
        for old in [k for k, (at, _) in self._done.items() if now - at > self.ttl]:
            self._done.pop(old, None)
        done = self._done.setdefault(key, (now, set()))[1]
        if step in done:
            return
        await send()
        done.add(step)

    def done(self, key: str, step: str) -> bool:
        entry = self._done.get(key)
        return entry is not None and step in entry[1]

    def finish(self, key: str) -> None:
        self._done.pop(key, None)


# ---------------------------------------------------------------- outbound: the app


def batches(user_ids: Iterable[str], size: int = BATCH) -> list[str]:
    """message/send's touser values: at most `size` userids each, joined by '|'."""
    ids = list(dict.fromkeys(u for u in user_ids if u))
    return ["|".join(ids[i:i + size]) for i in range(0, len(ids), size)]


class WeComAppTransport:
    """Delivers outbox rows to WeCom users through the app's message/send (text, or markdown for the
    WeCom client), attachments as uploaded image or file messages. Per member: 30 messages a minute."""

    platform = PLATFORM
    limit = APP_LIMIT
    measure = staticmethod(utf8_len)

    def __init__(self, api: WeComApi, fmt: str = "text"):
        if fmt not in ("text", "markdown"):
            raise ValueError("WeCom app messages are text or markdown")
        self.api = api
        self.fmt = fmt
        self.steps = SentSteps()

    async def send(self, target: str, text: str, reply: Reply) -> None:
        if target.startswith(GROUP_PREFIX):
            raise PermanentError("the app cannot post in groups: a township group is reached through its group robot")
        key = self.steps.key(target, text, reply)
        # Uploads first: they show nothing, so a failed upload leaves nothing half-sent on screen.
        media = [("image" if att.kind == "image" else "file", att) for att in reply.attachments]
        media_ids = [None if self.steps.done(key, f"media{i}") else await self.api.upload_media(kind, att)
                     for i, (kind, att) in enumerate(media)]
        choices = numbered_choices(reply, text)
        if choices and utf8_len(f"{text}\n{choices}") <= self.limit:
            text, choices = f"{text}\n{choices}", ""
        for step, body in (("text", text), ("choices", choices)):
            if body.strip():
                await self.steps.run(key, step, lambda body=body: self._send(target, self.fmt, {"content": body}))
        for i, ((kind, _att), media_id) in enumerate(zip(media, media_ids, strict=True)):
            await self.steps.run(key, f"media{i}", lambda kind=kind, m=media_id: self._send(target, kind, {"media_id": m}))
        self.steps.finish(key)

    async def _send(self, target: str, msgtype: str, body: dict[str, Any]) -> None:
        data = await self.api.send_message(target, msgtype, body)
        if target in str(data.get("invaliduser") or "").split("|"):
            raise PermanentError("the member is not in the app's visible range (invaliduser)")

    async def broadcast(self, user_ids: Iterable[str], text: str) -> list[str]:
        """One text to many members, 1000 per call; returns the userids WeCom could not reach."""
        unreachable: list[str] = []
        for touser in batches(user_ids):
            data = await self.api.send_message(touser, self.fmt, {"content": text})
            unreachable += [u for u in str(data.get("invaliduser") or "").split("|") if u]
        return unreachable


# ---------------------------------------------------------------- outbound: group robots


class WeComRobotTransport:
    """Posts to a township's WeCom group through its group robot (群机器人) webhook, send only.

    The target is a township name (key from HUANJIE_WECOM_ROBOT_KEYS, else the roster's 群机器人 column)
    or the key itself. Markdown up to 4096 bytes; mentions become <@userid> when the person's WeCom
    userid is known, else a short text message with mentioned_mobile_list; PNG/JPG images go as image
    messages (base64 + md5), other files (Excel) through upload_media. 20 messages a minute per robot.
    """

    platform = ROBOT_PLATFORM
    fmt = "markdown"
    limit = ROBOT_LIMIT
    measure = staticmethod(utf8_len)

    def __init__(self, deps, client: httpx.AsyncClient, base: str):
        self.deps = deps
        self.client = client
        self.base = base.rstrip("/")
        self.steps = SentSteps()

    def robot_key(self, target: str) -> str:
        keys = self.deps.settings.wecom_robot_keys
        if target in keys:
            return keys[target]
        with self.deps.uow() as uow:
            for region in uow.regions.find(target):
                if region.kind in TOWNSHIP_KINDS and region.robot_key:
                    return region.robot_key
        if KEY_SHAPE.match(target):
            return target
        raise PermanentError(f"no group robot key for {target[:40]}: HUANJIE_WECOM_ROBOT_KEYS or the roster's 群机器人 column")

    async def send(self, target: str, text: str, reply: Reply) -> None:
        key = self.robot_key(target)
        done_key = self.steps.key(target, text, reply)
        inline, mobiles, names = self._mentions(reply)
        last = self._is_last_part(text, reply)
        for mention, userid in inline:
            tag = f"<@{userid}>"
            if f"@{mention.name}" in text:
                text = text.replace(f"@{mention.name}", tag)
            elif last:
                text = f"{text}\n{tag}"
        files = {i: await self._upload(key, att) for i, att in enumerate(reply.attachments)
                 if not self._is_picture(att) and not self.steps.done(done_key, f"att{i}")}
        if text.strip():
            await self.steps.run(done_key, "markdown",
                                 lambda: self._post(key, {"msgtype": "markdown", "markdown": {"content": text}}))
        if last and mobiles:
            content = self.deps.renderer.render(Reply("wecom_robot_mention", {"names": names}), "text")
            body = {"msgtype": "text", "text": {"content": content[:ROBOT_TEXT_LIMIT // 3], "mentioned_mobile_list": mobiles}}
            await self.steps.run(done_key, "mention", lambda: self._post(key, body))
        for i, att in enumerate(reply.attachments):
            if self.steps.done(done_key, f"att{i}"):
                continue
            if i in files:
                payload = {"msgtype": "file", "file": {"media_id": files[i]}}
            else:
                payload = {"msgtype": "image", "image": {"base64": base64.b64encode(att.content).decode(),
                                                         "md5": hashlib.md5(att.content).hexdigest()}}
            await self.steps.run(done_key, f"att{i}", lambda p=payload: self._post(key, p))
        self.steps.finish(done_key)

    def _is_last_part(self, text: str, reply: Reply) -> bool:
        if reply.attachments or reply.choices:
            return True  # the sender gives them to the last part only
        try:
            parts = split_message(self.deps.renderer.render(reply, self.fmt), self.limit, self.measure)
        except Exception:
            return True
        return text == parts[-1]

    def _mentions(self, reply: Reply) -> tuple[list[tuple[Mention, str]], list[str], list[str]]:
        """(mentions with a WeCom userid, mobiles of the others, their names)."""
        inline, mobiles, names = [], [], []
        for mention in reply.mentions:
            userid = mention.platform_user_id or self._userid(mention)
            if userid:
                inline.append((mention, userid))
            elif mention.mobile:
                mobiles.append(mention.mobile)
                names.append(mention.name)
        return inline, list(dict.fromkeys(mobiles)), names

    def _userid(self, mention: Mention) -> str | None:
        if not mention.mobile:
            return None
        with self.deps.uow() as uow:
            person = uow.persons.by_phone(mention.mobile)
            idents = uow.identities.of_person(person.id, PLATFORM) if person else []
            return idents[0].external_id if idents else None

    @staticmethod
    def _is_picture(att: Attachment) -> bool:
        png_or_jpeg = att.content[:8] == b"\x89PNG\r\n\x1a\n" or att.content[:3] == b"\xff\xd8\xff"
        return att.kind == "image" and png_or_jpeg and len(att.content) <= IMAGE_MAX

    async def _upload(self, key: str, att: Attachment) -> str:
        files = {"media": (att.filename, att.content, "application/octet-stream")}
        data = await request_json(self.client, "POST", f"{self.base}/cgi-bin/webhook/upload_media",
                                  params={"key": key, "type": "file"}, files=files)
        check_errcode(data, "webhook/upload_media")
        if not data.get("media_id"):
            raise TransientError("webhook/upload_media answered without media_id")
        return str(data["media_id"])

    async def _post(self, key: str, payload: dict[str, Any]) -> None:
        data = await request_json(self.client, "POST", f"{self.base}/cgi-bin/webhook/send", params={"key": key},
                                  json=payload)
        check_errcode(data, "webhook/send")


# ---------------------------------------------------------------- inbound


def app_incoming(data: dict[str, str]) -> Incoming | None:
    """The decrypted app callback → Incoming; None for what the router has nothing to say to."""
    userid = data.get("FromUserName", "")
    if not userid:
        return None
    chat, sender = ChatRef(PLATFORM, userid, False), UserRef(userid)
    kind = data.get("MsgType", "")
    if kind == "text":
        text = data.get("Content", "")
        if not text.strip():
            return None
        return Incoming(chat=chat, sender=sender, text=text, message_id=data.get("MsgId") or None, raw=data)
    if kind == "event" and data.get("Event", "").lower() == "subscribe":
        return Incoming(chat=chat, sender=sender, text="/start", message_id=delivery_key(data), raw=data)
    return None


def bot_incoming(data: dict[str, Any], bot_names: Iterable[str]) -> Incoming | None:
    """A smart robot callback (text, or the text items of a mixed message) → Incoming.

    The robot answers the person who @-ed it, so the message is treated like a private message to the
    app (same chat id, same identity, township from their roster assignment): no group needs binding,
    and the group never becomes a push target of the app, which cannot post in groups."""
    userid = str((data.get("from") or {}).get("userid") or "")
    kind = data.get("msgtype")
    if kind == "text":
        text = str((data.get("text") or {}).get("content") or "")
    elif kind == "mixed":
        items = (data.get("mixed") or {}).get("msg_item") or []
        text = "\n".join(str((i.get("text") or {}).get("content") or "") for i in items
                         if isinstance(i, dict) and i.get("msgtype") == "text")
    else:
        return None
    if not userid or not text.strip():
        return None
    in_group = data.get("chattype") == "group"
    if in_group:
        text = LEADING_MENTION.sub("", text, count=1)  # the callback comes because the robot was @-ed
        for name in bot_names:
            text = text.replace(f"@{name}", "")
    return Incoming(chat=ChatRef(PLATFORM, userid, False), sender=UserRef(userid), text=text.strip(),
                    message_id=f"bot:{data['msgid']}" if data.get("msgid") else None, mentioned=in_group, raw=data)


@dataclass
class _Stream:
    """A smart robot answer still being worked out when the callback had to return."""

    id: str
    task: asyncio.Task
    started: float = field(default_factory=time.monotonic)


class WeComAdapter:
    """Both WeCom callbacks: the app's (/wecom/callback, XML) and the smart robot's (/wecom/bot/callback, JSON)."""

    def __init__(self, deps, crypto: AesCallback | None, api: WeComApi | None = None,
                 bot_crypto: AesCallback | None = None):
        self.deps = deps
        self.crypto = crypto
        self.api = api
        self.bot_crypto = bot_crypto
        self.tasks: set[asyncio.Task] = set()
        self.streams: dict[str, _Stream] = {}
        self._by_msgid: dict[str, str] = {}
        self._looked_up: dict[str, float] = {}
        self._queue: asyncio.Queue[Incoming] = asyncio.Queue()
        self._worker: asyncio.Task | None = None
        self._known: set[str] = set()  # userids already linked to a roster person
        self._answering = 0  # callbacks being answered right now
        self._last_callback = 0.0
        self._flushing: asyncio.Task | None = None
        self._more_to_send = False
        self._quiet = asyncio.Event()  # set while no callback is being answered
        self._quiet.set()

    def routes(self) -> list[Route]:
        routes = []
        if self.crypto is not None:
            routes.append(Route(CALLBACK_PATH, self.app_callback, methods=["GET", "POST"]))
        if self.bot_crypto is not None:
            routes.append(Route(BOT_CALLBACK_PATH, self.bot_callback, methods=["GET", "POST"]))
        return routes

    # -- the app

    async def app_callback(self, request: Request) -> Response:
        self._answering += 1
        self._quiet.clear()
        self._last_callback = time.monotonic()
        try:
            return await self._app_callback(request)
        finally:
            self._answering -= 1
            if not self._answering:
                self._quiet.set()

    async def _app_callback(self, request: Request) -> Response:
        params = query_params(request)
        sig, ts, nonce = params.get("msg_signature"), params.get("timestamp"), params.get("nonce")
        try:
            if request.method == "GET":  # URL verification: answer the decrypted echostr
                return PlainTextResponse(self.crypto.open(sig, ts, nonce, params.get("echostr")))
            outer = parse_xml(await read_body(request))
            data = parse_xml(self.crypto.open(sig, ts, nonce, outer.get("Encrypt")))
        except CallbackRejected as exc:
            return refused("wecom", PLATFORM, exc)
        msg, key = app_incoming(data), delivery_key(data)
        if msg is None or key is None:
            return PlainTextResponse("")
        try:
            if not first_delivery(self.deps, PLATFORM, f"app:{key}"):
                log.info("wecom redelivery ignored", extra={"platform": PLATFORM})
                return PlainTextResponse("")
        except self.deps.db_errors:
            return busy(PLATFORM)
        self._enqueue(msg)  # WeCom retries after five seconds: acknowledge now, work after
        return PlainTextResponse("")  # an empty 200: no passive reply, the answer comes via message/send

    def _enqueue(self, msg: Incoming) -> None:
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="wecom-messages")
        self._queue.put_nowait(msg)

    async def _work(self) -> None:
        """Messages in arrival order (a report, then the number answering its question), one at a time and
        only between callbacks: a report is a few milliseconds of parser and database work, and during a
        burst the answers WeCom waits for (it retries after five seconds) go first. The queue catches up
        when the burst is over."""
        while True:
            msg = await self._queue.get()
            started = time.perf_counter()
            try:
                await self._quiet.wait()
                await self.handle(msg)
            finally:
                self._queue.task_done()
            busy = time.monotonic() - self._last_callback < BURST_GAP
            await asyncio.sleep((time.perf_counter() - started) * BURST_YIELD if busy else 0)

    async def handle(self, msg: Incoming) -> None:
        try:
            with self.deps.db.shared():  # one database session for the whole message
                known = await self.ensure_identity(msg.sender.id)
                replies = await self.deps.router.dispatch(msg, self.deps)
                if not known and self._needs_unknown_note(msg, replies):
                    replies.insert(0, Reply("wecom_unknown_user", {"userid": msg.sender.id}))
                queued = await respond(self.deps, msg, replies, flush=False)
        except self.deps.db_errors:
            log.exception("database unavailable: the sender is asked to send again", extra={"platform": PLATFORM})
            await self._tell_directly(msg, Reply("db_unavailable"))
            return
        except Exception:
            log.exception("wecom message could not be handled", extra={"platform": PLATFORM})
            return
        sender = self.deps.extras.get("sender")
        if queued and sender is not None and PLATFORM in sender.transports:
            self._deliver_soon()

    async def _tell_directly(self, msg: Incoming, reply: Reply) -> None:
        """Without the database there is no outbox: say it straight through message/send."""
        sender = self.deps.extras.get("sender")
        transport = sender.transports.get(PLATFORM) if sender is not None else None
        if transport is None:
            return
        try:
            await transport.send(msg.chat.id, self.deps.renderer.render(reply, transport.fmt), reply)
        except Exception:
            log.exception("wecom user could not be told", extra={"platform": PLATFORM})

    def _deliver_soon(self) -> None:
        """Have the sender deliver what is queued, in one flush for however many messages were handled
        meanwhile: message/send is a network round trip, and the next message need not wait for it."""
        self._more_to_send = True
        if self._flushing is None or self._flushing.done():
            self._flushing = self._spawn(self._flush())

    async def _flush(self) -> None:
        sender = self.deps.extras.get("sender")
        while sender is not None and self._more_to_send:
            self._more_to_send = False
            try:
                await sender.flush_once()
            except Exception:  # the sender's own loop tries again within a second
                log.exception("wecom replies could not be sent now", extra={"platform": PLATFORM})
                return

    def _needs_unknown_note(self, msg: Incoming, replies: list[Reply]) -> bool:
        """Once a day, an unknown userid is told why the bot does not know them and how to fix it."""
        parsed = split_command(msg.text)
        if parsed and parsed[0] in ("bind", "绑定", "start"):
            return False
        if any(r.template in EXPLAINS_BINDING for r in replies):
            return False
        with self.deps.uow() as uow:
            if uow.identities.person_for(PLATFORM, msg.sender.id) is not None:
                return False  # bound by this very message
        return first_delivery(self.deps, PLATFORM, f"unknown:{msg.sender.id}:{self.deps.today().isoformat()}")

    def _spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def drain(self) -> None:
        """Wait for the messages being handled (tests, benchmarks, shutdown)."""
        await self._queue.join()
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    # -- identity

    async def ensure_identity(self, userid: str) -> bool:
        """Link an unknown userid to its roster person: by HUANJIE_WECOM_USERS (userid → mobile), else by
        the mobile WeCom's directory has for it (user/get). Apps created after June 2022 get no mobile,
        so a unique roster name is confirmed with user/getuserid instead. Otherwise the person binds
        themselves (/bind) or an admin links them (`huanjie person link 姓名 wecom:USERID`)."""
        if userid in self._known:
            return True
        with self.deps.uow() as uow:
            if uow.identities.person_for(PLATFORM, userid) is not None:
                self._known.add(userid)
                return True
        mapped = (getattr(self.deps.settings, "wecom_users", None) or {}).get(userid)
        if mapped:
            with self.deps.uow() as uow:
                person = uow.persons.by_phone(str(mapped))
                person_id = person.id if person else None
            if person_id is not None:
                return self._link(userid, person_id, "HUANJIE_WECOM_USERS")
        if self.api is None or time.monotonic() - self._looked_up.get(userid, -IDENTITY_RECHECK) < IDENTITY_RECHECK:
            return False
        self._looked_up[userid] = time.monotonic()
        try:
            info = await self.api.get_user(userid)
            mobile = str(info.get("mobile") or "")
            with self.deps.uow() as uow:
                person = uow.persons.by_phone(mobile) if mobile else None
                person_id = person.id if person else None
                candidates = [] if person_id or not info.get("name") else [
                    (p.id, p.phone) for p in uow.persons.by_name(str(info["name"])) if p.phone]
            if person_id is None and len(candidates) == 1 and await self.api.userid_by_mobile(candidates[0][1]) == userid:
                person_id = candidates[0][0]
        except (RetryAfter, TransientError, PermanentError) as exc:
            log.info("wecom user look-up failed: %s", exc, extra={"platform": PLATFORM})
            return False
        if person_id is None:
            log.info("wecom user not in the roster: /bind, or `huanjie person link`", extra={"platform": PLATFORM})
            return False
        return self._link(userid, person_id, "the WeCom directory")

    def _link(self, userid: str, person_id: int, how: str) -> bool:
        now = self.deps.clock.now()
        with self.deps.uow() as uow:
            uow.identities.link(PLATFORM, userid, uow.persons.get(person_id), now)
            uow.audit.record(f"{PLATFORM}:{userid}", "wecom_link", f"person {person_id} by {how}", now)
            uow.commit()
        return True

    # -- the smart robot

    async def bot_callback(self, request: Request) -> Response:
        params = query_params(request)
        sig, ts, nonce = params.get("msg_signature"), params.get("timestamp"), params.get("nonce")
        try:
            if request.method == "GET":
                return PlainTextResponse(self.bot_crypto.open(sig, ts, nonce, params.get("echostr")))
            try:
                outer = json.loads(await read_body(request))
                data = json.loads(self.bot_crypto.open(sig, ts, nonce, outer.get("encrypt")))
            except (ValueError, AttributeError):
                raise CallbackRejected("not the smart robot's JSON") from None
            if not isinstance(data, dict):
                raise CallbackRejected("not the smart robot's JSON")
        except CallbackRejected as exc:
            return refused("wecom smart robot", PLATFORM, exc)
        try:
            answer = await self.bot_answer(data)
        except self.deps.db_errors:
            return busy(PLATFORM)
        if answer is None:
            return Response(status_code=200)
        sealed = self.bot_crypto.seal_json(json.dumps(answer, ensure_ascii=False), secrets.token_hex(8),
                                           str(int(time.time())))
        return JSONResponse(sealed)

    async def bot_answer(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The plaintext reply: a stream (finished when the router answered in time), or None."""
        self._forget_old_streams()
        kind = data.get("msgtype")
        if kind == "stream":
            stream = self.streams.get(str((data.get("stream") or {}).get("id") or ""))
            return await self._stream_state(stream) if stream else None
        if kind == "event":
            event = str((data.get("event") or {}).get("eventtype") or "")
            userid = str((data.get("from") or {}).get("userid") or "")
            if event != "enter_chat" or not userid:
                return None
            msg = Incoming(ChatRef(PLATFORM, userid, False), UserRef(userid), "/start", raw=data)
            text = passive_text(self.deps, await self.deps.router.dispatch(msg, self.deps), "text", STREAM_LIMIT)
            return {"msgtype": "text", "text": {"content": text}}
        msg = bot_incoming(data, self.deps.bot_names)
        if msg is None or not msg.message_id:
            return None
        if not first_delivery(self.deps, PLATFORM, msg.message_id):
            stream_id = self._by_msgid.get(msg.message_id)
            return await self._stream_state(self.streams[stream_id]) if stream_id in self.streams else None
        stream = _Stream(secrets.token_hex(12), self._spawn(self._bot_dispatch(msg)))
        self.streams[stream.id] = stream
        self._by_msgid[msg.message_id] = stream.id
        await asyncio.wait({stream.task}, timeout=BOT_ANSWER_WITHIN)
        return await self._stream_state(stream)

    async def _bot_dispatch(self, msg: Incoming) -> str:
        try:
            await self.ensure_identity(msg.sender.id)
            replies = await self.deps.router.dispatch(msg, self.deps)
        except Exception:
            log.exception("wecom smart robot message could not be handled", extra={"platform": PLATFORM})
            replies = [Reply("db_unavailable")]
        return passive_text(self.deps, replies, "markdown", STREAM_LIMIT)

    async def _stream_state(self, stream: _Stream) -> dict[str, Any]:
        done = stream.task.done()
        content = stream.task.result() if done and not stream.task.cancelled() else ""
        if done:
            self.streams.pop(stream.id, None)
        return {"msgtype": "stream", "stream": {"id": stream.id, "finish": done, "content": content}}

    def _forget_old_streams(self) -> None:
        now = time.monotonic()
        for sid, stream in list(self.streams.items()):
            if now - stream.started > STREAM_TTL:
                self.streams.pop(sid, None)
        live = set(self.streams)
        for msgid, sid in list(self._by_msgid.items()):
            if sid not in live:
                self._by_msgid.pop(msgid, None)


# ---------------------------------------------------------------- start-up


def bot_callback_secrets(settings) -> tuple[str, str]:
    """The smart robot's Token and EncodingAESKey: HUANJIE_WECOM_BOT_TOKEN/_AES_KEY when set, else the
    app's (enter the same two values on both configuration pages)."""
    return (getattr(settings, "wecom_bot_token", "") or settings.wecom_token,
            getattr(settings, "wecom_bot_aes_key", "") or settings.wecom_aes_key)


def build_wecom(deps, sender, client: httpx.AsyncClient) -> WeComAdapter:
    """Register the WeCom transports on the sender and return the callback adapter."""
    settings = deps.settings
    api = None
    if settings.wecom_corp_id and settings.wecom_secret:
        api = WeComApi(client, settings.wecom_api_base, settings.wecom_corp_id, settings.wecom_secret,
                       settings.wecom_agent_id)
        sender.register(WeComAppTransport(api), RateLimiter(per_second=20, per_target=30, window=60))
    sender.register(WeComRobotTransport(deps, client, settings.wecom_api_base),
                    RateLimiter(per_second=20, per_target=20, window=60))
    crypto = bot_crypto = None
    if settings.wecom_corp_id and settings.wecom_token and settings.wecom_aes_key:
        crypto = AesCallback(settings.wecom_token, settings.wecom_aes_key, settings.wecom_corp_id, wecom=True)
    token, aes_key = bot_callback_secrets(settings)
    if token and aes_key:
        bot_crypto = AesCallback(token, aes_key, "", wecom=True)
    adapter = WeComAdapter(deps, crypto, api, bot_crypto)
    deps.extras.setdefault("sender", sender)
    deps.extras["wecom"] = adapter
    return adapter


__all__ = [
    "SentSteps", "WeComAdapter", "WeComApi", "WeComAppTransport", "WeComRobotTransport", "app_incoming", "batches",
    "bot_incoming", "build_wecom", "check_errcode", "delivery_key",
]
