"""Telegram adapter (python-telegram-bot 22): every update → `Incoming` → router; `Reply` → Bot API calls.

Long polling by default; a webhook on the shared ASGI app (bot/http.py) when HUANJIE_TELEGRAM_WEBHOOK_URL
is set. Replies leave through the outbox (`bot.delivery.respond` → `TelegramTransport`); only the
feedback to a button press (the toast and the ✅ on the pressed message) is sent directly, because
Telegram accepts it only while the press is fresh.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import re
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from telegram import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    ChatMember,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    MessageEntity,
    Update,
)
from telegram import error as tg_error
from telegram.constants import ChatType, ParseMode
from telegram.ext import Application, ContextTypes, TypeHandler

from bot.delivery import respond
from bot.messages import ChatRef, Choice, Incoming, Mention, Reply, UserRef
from reminders.outbox import PermanentError, RateLimiter, RetryAfter, TransientError

log = logging.getLogger(__name__)

PLATFORM = "telegram"
MESSAGE_LIMIT = 4096
CALLBACK_DATA_MAX = 64  # bytes, Bot API limit for callback_data
WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
ANSWER_WITHIN = 1.5  # seconds: past this a button press is answered without a notice, then handled
GREETING_DEDUP = 300.0  # seconds: my_chat_member and the "joined" service message announce one join
WEBHOOK_BODY_MAX = 1_000_000
GROUPS = (ChatType.GROUP, ChatType.SUPERGROUP)
# Commands offered in the group menu; the rest (binding, codes, exports, leave) belong in private chats.
GROUP_COMMANDS = frozenset(
    {"help", "report", "cancel", "undo", "mine", "progress", "deadlines", "digest", "bindgroup", "ask", "law"}
)
PRIVATE_EXCLUDED = frozenset({"bindgroup"})
IN_CHAT = (ChatMember.MEMBER, ChatMember.ADMINISTRATOR, ChatMember.OWNER)
COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
USERNAME = re.compile(r"^[A-Za-z0-9_]{4,32}$")
ADDRESSED_COMMAND = re.compile(r"^([/／][A-Za-z_]+)@(\w+)")


# ---------------------------------------------------------------- update → Incoming


@dataclass(frozen=True)
class BotIdentity:
    """What getMe told us about ourselves."""

    id: int
    username: str
    can_read_all_group_messages: bool | None = None


class CallbackStore:
    """callback_data is at most 64 bytes: longer Choice.data travels as a digest and is looked up here.

    The map lives in memory; a press on a digest from before a restart reads as a stale button.
    """

    def __init__(self, size: int = 10_000):
        self.size = size
        self._data: OrderedDict[str, str] = OrderedDict()

    def encode(self, data: str) -> str:
        if len(data.encode("utf-8")) <= CALLBACK_DATA_MAX and not data.startswith("#"):
            return data
        key = "#" + hashlib.sha256(data.encode("utf-8")).hexdigest()[:24]
        self._data[key] = data
        self._data.move_to_end(key)
        while len(self._data) > self.size:
            self._data.popitem(last=False)
        return key

    def decode(self, data: str) -> str:
        return self._data.get(data, data) if data.startswith("#") else data


def chat_ref(chat) -> ChatRef:
    is_group = chat.type in GROUPS
    return ChatRef(PLATFORM, str(chat.id), is_group, chat.title if is_group else None)


def user_ref(user) -> UserRef:
    return UserRef(str(user.id), user.full_name, user.username)


def _joined(member_update) -> bool | None:
    """True when the bot became a member, False when it left or was removed, None for other changes."""
    old, new = member_update.old_chat_member, member_update.new_chat_member
    was = old.status in IN_CHAT or (old.status == ChatMember.RESTRICTED and getattr(old, "is_member", False))
    now = new.status in IN_CHAT or (new.status == ChatMember.RESTRICTED and getattr(new, "is_member", False))
    if was == now:
        return None
    return now


def _mentions_bot(message, me: BotIdentity) -> bool:
    if message.reply_to_message and message.reply_to_message.from_user:
        if message.reply_to_message.from_user.id == me.id:
            return True
    text = message.text or message.caption or ""
    for entity in (message.entities or ()) + (message.caption_entities or ()):
        if entity.type == MessageEntity.TEXT_MENTION and entity.user and entity.user.id == me.id:
            return True
    return bool(me.username) and re.search(rf"(?<!\w)@{re.escape(me.username)}(?!\w)", text, re.I) is not None


def _strip_bot_name(text: str, me: BotIdentity) -> str:
    if not me.username:
        return text.strip()
    text = re.sub(rf"^([/／][A-Za-z_]+)@{re.escape(me.username)}(?!\w)", r"\1", text.strip(), flags=re.I)
    text = re.sub(rf"[ \t]*(?<!\w)@{re.escape(me.username)}(?!\w)[ \t]*", " ", text, flags=re.I)
    return text.strip()


def update_to_incoming(update: Update, me: BotIdentity, decode: Callable[[str], str] = lambda d: d) -> Incoming | None:
    """The normalized message for one Telegram update, or None when there is nothing for the router."""
    if update.callback_query is not None:
        query = update.callback_query
        if query.message is None:  # a button under an inline-mode message: no chat to answer in
            return None
        return Incoming(
            chat=chat_ref(query.message.chat), sender=user_ref(query.from_user), text="",
            message_id=f"cb{query.id}", callback=decode(query.data or ""), raw=update,
        )
    if update.my_chat_member is not None:
        member = update.my_chat_member
        joined = _joined(member)
        if member.new_chat_member.user.id != me.id or member.chat.type not in GROUPS or joined is None:
            return None
        return Incoming(
            chat=chat_ref(member.chat), sender=user_ref(member.from_user), text="",
            message_id=f"joined{int(member.date.timestamp())}" if joined else None,
            event="bot_added" if joined else "bot_removed", raw=update,
        )
    message = update.message or update.edited_message
    if message is None or message.from_user is None:
        return None
    chat, sender = chat_ref(message.chat), user_ref(message.from_user)
    if message.new_chat_members and any(u.id == me.id for u in message.new_chat_members):
        if not chat.is_group:
            return None
        return Incoming(chat=chat, sender=sender, text="", message_id=f"joined{int(message.date.timestamp())}",
                        event="bot_added", raw=update)
    if message.left_chat_member and message.left_chat_member.id == me.id:
        return Incoming(chat=chat, sender=sender, text="", event="bot_removed", raw=update) if chat.is_group else None
    if message.from_user.is_bot:
        return None  # other bots' posts: never answer a bot (loops)
    text = message.text or message.caption or ""
    if not text.strip():
        return None
    addressed = ADDRESSED_COMMAND.match(text.strip())
    if addressed and me.username and addressed.group(2).lower() != me.username.lower():
        return None  # /command@another_bot
    return Incoming(
        chat=chat, sender=sender, text=_strip_bot_name(text, me), message_id=str(message.message_id),
        edited=update.edited_message is not None, mentioned=bool(addressed) or _mentions_bot(message, me), raw=update,
    )


# ---------------------------------------------------------------- Reply → Bot API


def _retry_seconds(exc: tg_error.RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that retry_after becomes a timedelta; take either
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _plain(html_text: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", html_text))


def keyboard(choices: Iterable[Choice], callbacks: CallbackStore) -> InlineKeyboardMarkup | None:
    rows = [[InlineKeyboardButton(c.label[:64], callback_data=callbacks.encode(c.data))] for c in choices]
    return InlineKeyboardMarkup(rows) if rows else None


class TelegramTransport:
    """Delivers outbox rows to Telegram chats: HTML text, inline keyboards, files, real mentions."""

    platform = PLATFORM
    fmt = "html"
    limit = MESSAGE_LIMIT

    def __init__(self, bot, deps, callbacks: CallbackStore | None = None):
        self.bot = bot
        self.deps = deps
        self.callbacks = callbacks or CallbackStore()
        self._edited: set[tuple[str, str]] = set()

    async def send(self, target: str, text: str, reply: Reply) -> None:
        text = self._with_mentions(text, reply)
        markup = keyboard(reply.choices, self.callbacks)
        edit = reply.edit_message_id
        if edit and (target, edit) not in self._edited:
            self._edited.add((target, edit))  # the later parts of a split message go out as new messages
            if await self._call(self._edit, target, int(edit), text, markup):
                await self._send_attachments(target, reply)
                return
        if text.strip():
            await self._call(self._send_text, target, text, markup)
        await self._send_attachments(target, reply)

    async def edit(self, target: str, message_id: int, text: str, choices: Iterable[Choice] = ()) -> bool:
        """Replace a message's text (and keyboard); False when Telegram will not edit it."""
        return await self._call(self._edit, target, message_id, text, keyboard(choices, self.callbacks))

    async def _send_text(self, target: str, text: str, markup) -> None:
        try:
            await self.bot.send_message(chat_id=target, text=text, parse_mode=ParseMode.HTML, reply_markup=markup,
                                        disable_web_page_preview=True)
        except tg_error.BadRequest as exc:
            if "parse entities" not in str(exc).lower():
                raise
            # Values are escaped, so this is a part cut inside an entity: send it as plain text.
            await self.bot.send_message(chat_id=target, text=_plain(text), reply_markup=markup)

    async def _edit(self, target: str, message_id: int, text: str, markup) -> bool:
        """editMessageText; without reply_markup Telegram drops the message's old buttons."""
        try:
            await self.bot.edit_message_text(chat_id=target, message_id=message_id, text=text, parse_mode=ParseMode.HTML,
                                             reply_markup=markup, disable_web_page_preview=True)
        except tg_error.BadRequest as exc:
            if "not modified" in str(exc).lower():
                return True
            if "chat not found" in str(exc).lower():
                raise
            log.info("telegram message could not be edited; sending it anew", extra={"platform": PLATFORM})
            return False
        return True

    async def _send_attachments(self, target: str, reply: Reply) -> None:
        for att in reply.attachments:
            await self._call(self._send_file, target, att)

    async def _send_file(self, target: str, att) -> None:
        upload = InputFile(att.content, filename=att.filename)
        if att.kind == "image":
            await self.bot.send_photo(chat_id=target, photo=upload)
        else:
            await self.bot.send_document(chat_id=target, document=upload)

    async def _call(self, fn, target: str, *args, migrated: bool = False):
        """`fn(target, *args)` with Telegram's errors mapped to the outbox's retry classes."""
        try:
            return await fn(target, *args)
        except tg_error.RetryAfter as exc:
            raise RetryAfter(_retry_seconds(exc), str(exc)) from exc
        except tg_error.ChatMigrated as exc:
            if migrated:
                raise TransientError(f"group moved again to {exc.new_chat_id}") from exc
            migrate_chat(self.deps, str(target), str(exc.new_chat_id))  # later messages go to the new id
            return await self._call(fn, str(exc.new_chat_id), *args, migrated=True)
        except tg_error.Forbidden as exc:
            raise PermanentError(f"forbidden: {exc}") from exc
        except tg_error.BadRequest as exc:  # before NetworkError: BadRequest subclasses it
            raise PermanentError(f"bad request: {exc}") from exc
        except (tg_error.TimedOut, tg_error.NetworkError) as exc:
            raise TransientError(str(exc)) from exc
        except tg_error.TelegramError as exc:
            raise TransientError(f"{exc.__class__.__name__}: {exc}") from exc

    # -- mentions

    def _with_mentions(self, text: str, reply: Reply) -> str:
        """“@张三” written by a template becomes a real mention; mentions not written go at the end."""
        if not reply.mentions:
            return text
        rest = []
        for mention in reply.mentions:
            tag = self._mention_html(mention)
            if tag is None:
                continue
            written = "@" + html.escape(mention.name)
            if mention.name and written in text:
                text = text.replace(written, tag)
            else:
                rest.append(tag)
        if rest and self._is_last_part(text, reply):
            text = f"{text}\n{' '.join(rest)}"
        return text

    def _is_last_part(self, text: str, reply: Reply) -> bool:
        try:
            whole = self.deps.renderer.render(reply, self.fmt)
        except Exception:
            return True
        tail = whole.rsplit("\n", 1)[-1]
        return text.endswith(tail) or not tail

    def _mention_html(self, mention: Mention) -> str | None:
        username, user_id = mention.username, mention.platform_user_id
        if not username and not user_id:
            username, user_id = self._lookup(mention)
        if username and USERNAME.match(username):
            return "@" + username
        if user_id and str(user_id).isdigit():
            return f'<a href="tg://user?id={int(user_id)}">{html.escape(mention.name or str(user_id))}</a>'
        return None

    def _lookup(self, mention: Mention) -> tuple[str | None, str | None]:
        """A roster person's Telegram account (PlatformIdentity), found by mobile or by a unique name."""
        try:
            with self.deps.uow() as uow:
                person = uow.persons.by_phone(mention.mobile) if mention.mobile else None
                if person is None and mention.name:
                    people = uow.persons.by_name(mention.name)
                    person = people[0] if len(people) == 1 else None
                if person is None:
                    return None, None
                for ident in uow.identities.of_person(person.id, PLATFORM):
                    return ident.username, ident.external_id
        except Exception:
            log.warning("mention lookup failed", exc_info=True, extra={"platform": PLATFORM})
        return None, None


def migrate_chat(deps, old: str, new: str) -> None:
    """A group upgraded to a supergroup gets a new id: keep its township binding."""
    with deps.uow() as uow:
        chat = uow.chats.get(PLATFORM, old)
        if chat is not None and uow.chats.get(PLATFORM, new) is None:
            chat.chat_id = new
            uow.commit()
            log.info("telegram group migrated to a supergroup", extra={"platform": PLATFORM, "chat": new})


# ---------------------------------------------------------------- the adapter


class TelegramAdapter:
    """Handles every update: maps it, dispatches it through the router, answers through the outbox."""

    def __init__(self, deps, bot, me: BotIdentity, callbacks: CallbackStore | None = None, transport=None):
        self.deps = deps
        self.bot = bot
        self.me = me
        self.callbacks = callbacks or CallbackStore()
        self.transport = transport or TelegramTransport(bot, deps, self.callbacks)
        self.privacy_mode = me.can_read_all_group_messages is False
        self._greeted: dict[str, float] = {}

    async def on_update(self, update: object, _context: ContextTypes.DEFAULT_TYPE | None = None) -> None:
        if isinstance(update, Update):
            await self.handle(update)

    async def handle(self, update: Update) -> None:
        message = update.message
        if message is not None and message.migrate_to_chat_id:
            migrate_chat(self.deps, str(message.chat.id), str(message.migrate_to_chat_id))
            return
        msg = update_to_incoming(update, self.me, self.callbacks.decode)
        if msg is None:
            if update.callback_query is not None:
                await self._answer(update.callback_query.id, None)
            return
        if msg.event == "bot_removed":
            log.info("bot removed from a group", extra={"platform": PLATFORM, "chat": msg.chat.id})
            return
        if msg.event == "bot_added":
            await self._on_added(msg)
            return
        if msg.callback is not None:
            await self._on_button(update, msg)
            return
        replies = await self.deps.router.dispatch(msg, self.deps)
        await respond(self.deps, msg, replies)

    async def _on_added(self, msg: Incoming) -> None:
        now = time.monotonic()
        if now - self._greeted.get(msg.chat.id, -GREETING_DEDUP) < GREETING_DEDUP:
            return
        self._greeted[msg.chat.id] = now
        replies = await self.deps.router.dispatch(msg, self.deps)
        member = msg.raw.my_chat_member if msg.raw is not None else None
        made_admin = member is not None and member.new_chat_member.status in (ChatMember.ADMINISTRATOR, ChatMember.OWNER)
        if self.privacy_mode and not made_admin:
            replies.append(Reply("telegram_privacy", {"bot_username": self.me.username}))
        await respond(self.deps, msg, replies)

    async def _on_button(self, update: Update, msg: Incoming) -> None:
        query = update.callback_query
        work = asyncio.ensure_future(self.deps.router.dispatch(msg, self.deps))
        done, _ = await asyncio.wait({work}, timeout=ANSWER_WITHIN)
        answered = not done
        if answered:
            await self._answer(query.id, None)  # keep the spinner short; the reply follows
        replies = await work
        notice = next((r.notice for r in replies if r.notice), None)
        stale = any(r.template == "stale_button" for r in replies)
        replies = [r for r in replies if r.template != "stale_button"]  # a stale press gets only the toast
        if not answered:
            await self._answer(query.id, notice)
        if not stale:
            await self._show_choice(query)
        await respond(self.deps, msg, replies)

    async def _answer(self, query_id: str, notice: str | None) -> None:
        try:
            await self.bot.answer_callback_query(query_id, text=(notice or None) and notice[:200])
        except tg_error.TelegramError as exc:  # too late or already answered: nothing to lose
            log.info("callback answer failed: %s", exc.__class__.__name__, extra={"platform": PLATFORM})

    async def _show_choice(self, query) -> None:
        """Mark the pressed button's message with the choice and drop its keyboard (no second press)."""
        message = query.message
        if message is None or not getattr(message, "date", None) or not getattr(message, "text", None):
            return
        markup = message.reply_markup
        label = next((b.text for row in (markup.inline_keyboard if markup else ()) for b in row
                      if b.callback_data == query.data), None)
        if label is None:
            return
        text = f"{message.text_html}\n\n✅ {html.escape(label)}"
        try:
            await self.transport.edit(str(message.chat.id), message.message_id, text)
        except (RetryAfter, TransientError, PermanentError) as exc:
            log.info("could not mark the chosen button: %s", exc, extra={"platform": PLATFORM})


# ---------------------------------------------------------------- commands, webhook, start/stop


def bot_commands(routes) -> tuple[list[BotCommand], list[BotCommand]]:
    """(private menu, group menu) from the route table. Admin-only commands stay out of the menus:
    admins find them in /help, everyone else would only be told they may not use them."""
    private, group = [], []
    for route in routes:
        if route.hidden or not COMMAND_NAME.match(route.command) or not route.help:
            continue
        if route.roles <= {"admin"}:
            continue
        description = route.help + (f"，格式：/{route.command} {route.usage}" if route.usage else "")
        command = BotCommand(route.command, description[:256])
        if route.command not in PRIVATE_EXCLUDED:
            private.append(command)
        if route.command in GROUP_COMMANDS:
            group.append(command)
    return private, group


async def set_commands(bot, routes) -> None:
    private, group = bot_commands(routes)
    await bot.set_my_commands(commands=private, scope=BotCommandScopeAllPrivateChats())
    await bot.set_my_commands(commands=group, scope=BotCommandScopeAllGroupChats())


def webhook_secret(settings) -> str:
    """HUANJIE_TELEGRAM_SECRET, or one derived from the token (stable across restarts, never the token)."""
    if settings.telegram_secret:
        return settings.telegram_secret
    return hashlib.sha256(f"huanjie-telegram-webhook:{settings.telegram_token}".encode()).hexdigest()


def webhook_url(settings) -> str:
    url = settings.telegram_webhook_url.strip()
    if urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + WEBHOOK_PATH
    return url


def api_root(settings) -> tuple[str, str]:
    """(base_url, base_file_url) for Application.builder() from HUANJIE_TELEGRAM_BASE_URL."""
    root = settings.telegram_base_url.strip().rstrip("/")
    if not root:
        return "https://api.telegram.org/bot", "https://api.telegram.org/file/bot"
    if "{token}" in root or root.endswith("/bot"):
        base = root
        file_root = root.replace("{token}", "").rstrip("/").removesuffix("/bot")
    else:
        base, file_root = root + "/bot", root
    return base, file_root + "/file/bot"


def telegram_http_routes(deps, application: Application) -> list[Route]:
    """The webhook endpoint for the shared ASGI app: only Telegram, which knows the secret, may post."""
    secret = webhook_secret(deps.settings).encode()

    async def webhook(request: Request) -> Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not given or not hmac.compare_digest(given, secret):
            return PlainTextResponse("forbidden", status_code=403)
        body = await request.body()
        if len(body) > WEBHOOK_BODY_MAX:
            return PlainTextResponse("too large", status_code=413)
        try:
            data = json.loads(body)
            update = Update.de_json(data, application.bot) if isinstance(data, dict) else None
        except Exception:
            update = None
        if update is None:
            return PlainTextResponse("bad update", status_code=400)
        await application.update_queue.put(update)
        return Response(status_code=200)

    return [Route(WEBHOOK_PATH, webhook, methods=["POST"])]


def build_application(settings, webhook: bool) -> Application:
    base, files = api_root(settings)
    builder = Application.builder().token(settings.telegram_token).base_url(base).base_file_url(files)
    if webhook:
        builder = builder.updater(None)
    return builder.concurrent_updates(False).build()


async def _initialize(application: Application, stop: asyncio.Event) -> bool:
    """getMe until it answers (Telegram may be unreachable for a while); False when asked to stop first."""
    delay = 1.0
    while not stop.is_set():
        try:
            await application.initialize()
            return True
        except tg_error.InvalidToken:
            log.error("Telegram refused HUANJIE_TELEGRAM_TOKEN: copy the token BotFather gave", extra={"platform": PLATFORM})
            raise
        except (tg_error.TimedOut, tg_error.NetworkError) as exc:
            if isinstance(exc, tg_error.BadRequest):
                raise
            log.warning("Telegram unreachable at start; retrying in %.0fs", delay, extra={"platform": PLATFORM})
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 60.0)
    return False


async def run_telegram(deps, sender, stop_event: asyncio.Event, *, http_routes: Iterable[Route] = (),
                       ready: asyncio.Event | None = None, poll_timeout: int = 10) -> None:
    """Run the Telegram bot until `stop_event` is set: polling, or the webhook served by bot.http.

    `http_routes` are other platforms' routes to serve on the same app in webhook mode.
    """
    from bot.http import build_http_app, serve

    settings = deps.settings
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its INFO lines carry the token in the URL
    use_webhook = bool(settings.telegram_webhook_url)
    application = build_application(settings, webhook=use_webhook)
    if not await _initialize(application, stop_event):
        return
    me_user = application.bot.bot
    me = BotIdentity(me_user.id, me_user.username or "", me_user.can_read_all_group_messages)
    callbacks = CallbackStore()
    transport = TelegramTransport(application.bot, deps, callbacks)
    adapter = TelegramAdapter(deps, application.bot, me, callbacks, transport)
    deps.extras["telegram"] = adapter
    deps.extras.setdefault("sender", sender)
    sender.register(transport, RateLimiter(per_second=30, per_target=20, window=60))
    if adapter.privacy_mode:
        log.warning(
            "Telegram privacy mode is on: in groups the bot sees only commands and mentions, not reports. "
            "BotFather /setprivacy → Disable, or make the bot a group admin",
            extra={"platform": PLATFORM},
        )
    application.add_handler(TypeHandler(Update, adapter.on_update))

    async def on_error(_update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("telegram update failed", exc_info=context.error, extra={"platform": PLATFORM})

    application.add_error_handler(on_error)
    try:
        await set_commands(application.bot, deps.router.routes)
    except tg_error.TelegramError as exc:
        log.warning("could not set the command menus: %s", exc, extra={"platform": PLATFORM})
    server: asyncio.Task | None = None
    await application.start()
    try:
        if use_webhook:
            await application.bot.set_webhook(webhook_url(settings), secret_token=webhook_secret(settings),
                                              allowed_updates=ALLOWED_UPDATES)
            app = build_http_app(deps, [*telegram_http_routes(deps, application), *http_routes])
            server = asyncio.create_task(serve(app, settings.http_host, settings.http_port), name="telegram-webhook")
        else:
            await application.updater.start_polling(allowed_updates=ALLOWED_UPDATES, timeout=poll_timeout,
                                                    poll_interval=0.0)
        log.info("telegram started", extra={"platform": PLATFORM, "status": "webhook" if use_webhook else "polling"})
        if ready is not None:
            ready.set()
        waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(stop_event.wait())}
        if server is not None:
            waits.add(server)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            if waiter is not server:
                waiter.cancel()
        if server is not None and server.done() and not stop_event.is_set():
            log.error("the webhook HTTP server stopped", exc_info=server.exception(), extra={"platform": PLATFORM})
            server.result()  # a port in use or the like: let the runner see it
    finally:
        sender.transports.pop(PLATFORM, None)  # queued replies stay in the outbox for the next start
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if server is not None:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        if application.running:
            await application.stop()
        await application.shutdown()
        log.info("telegram stopped", extra={"platform": PLATFORM})


__all__ = [
    "BotIdentity", "CallbackStore", "TelegramAdapter", "TelegramTransport", "bot_commands", "build_application",
    "run_telegram", "set_commands", "telegram_http_routes", "update_to_incoming", "webhook_secret",
]
