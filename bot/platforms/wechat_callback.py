"""What every WeChat-family callback shares (WeCom app, WeCom smart robot, Official Account): query
parameters URL-decoded the way WeChat encodes them, SHA1 signatures, WeCom's AES scheme through wechatpy,
XML read without entities, and the replies rendered for a passive answer.

Whatever fails raises `CallbackRejected`; the adapters answer it with 403 and store nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import xml.etree.ElementTree as ET
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from bot.rendering import split_message, utf8_len

log = logging.getLogger(__name__)

BODY_MAX = 256 * 1024  # bytes: WeChat's callbacks are a few kilobytes
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


class CallbackRejected(Exception):
    """The request is not from WeChat/WeCom (bad signature, wrong key, malformed body). Safe to log."""


def refused(what: str, platform: str, exc: CallbackRejected) -> Response:
    """The answer to a callback that is not from WeChat/WeCom: 403, the reason logged (never a secret)."""
    log.warning("%s callback refused: %s", what, exc, extra={"platform": platform})
    return PlainTextResponse("forbidden", status_code=403)


def busy(platform: str) -> Response:
    """Call inside `except deps.db_errors`: 503, so that WeChat/WeCom retries the callback later."""
    log.exception("database unavailable: the platform will retry", extra={"platform": platform})
    return PlainTextResponse("busy", status_code=503)


def query_params(request: Request) -> dict[str, str]:
    """Query parameters percent-decoded without turning '+' into a space: base64 keeps its '+' whether
    WeChat encoded it (%2B) or not."""
    params: dict[str, str] = {}
    for pair in request.url.query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            params.setdefault(unquote(name), unquote(value))
    return params


async def read_body(request: Request, limit: int = BODY_MAX) -> bytes:
    """The request body, refused as soon as it passes `limit` (never read whole into memory first)."""
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > limit):
        raise CallbackRejected("body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise CallbackRejected("body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def sha1_signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def check_signature(given: str | None, *parts: str) -> None:
    if not given or not hmac.compare_digest(given.lower().encode(), sha1_signature(*parts).encode()):
        raise CallbackRejected("bad signature")


class AesCallback:
    """One callback's Token, EncodingAESKey and receive id (CorpID, AppID, or "" for the smart robot),
    with wechatpy doing the AES. A wrong key surfaces from wechatpy as anything from a bare
    UnicodeDecodeError to struct.error: every one of them is a rejection."""

    def __init__(self, token: str, aes_key: str, receive_id: str, *, wecom: bool):
        if wecom:
            from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto
        else:
            from wechatpy.crypto import PrpCrypto, WeChatCrypto
        try:
            self._crypto = WeChatCrypto(token, aes_key, receive_id)
        except (AssertionError, ValueError):
            raise ValueError("EncodingAESKey is not 43 characters of base64") from None
        self._prp = PrpCrypto
        self.token = token
        self.receive_id = receive_id

    def open(self, signature: str | None, timestamp: str | None, nonce: str | None, encrypted: str | None) -> str:
        """Check msg_signature over the ciphertext, then decrypt it; the plaintext message."""
        if not encrypted or timestamp is None or nonce is None:
            raise CallbackRejected("missing signature parameters or ciphertext")
        check_signature(signature, self.token, timestamp, nonce, encrypted)
        try:
            return self._crypto.decrypt_message({"Encrypt": encrypted}, signature, timestamp, nonce)
        except Exception as exc:  # wrong key, wrong receive id, truncated or non-base64 ciphertext
            raise CallbackRejected(f"cannot decrypt ({exc.__class__.__name__})") from None

    def seal_xml(self, plaintext: str, nonce: str, timestamp: str) -> str:
        """An encrypted passive reply: <xml><Encrypt/><MsgSignature/><TimeStamp/><Nonce/></xml>."""
        return self._crypto.encrypt_message(plaintext, nonce, timestamp)

    def seal_json(self, plaintext: str, nonce: str, timestamp: str) -> dict[str, str]:
        """The smart robot's encrypted reply: {"encrypt", "msgsignature", "timestamp", "nonce"}."""
        encrypted = self._prp(self._crypto.key).encrypt(plaintext, self.receive_id)
        encrypted = encrypted.decode() if isinstance(encrypted, bytes) else encrypted
        return {"encrypt": encrypted, "msgsignature": sha1_signature(self.token, timestamp, nonce, encrypted),
                "timestamp": timestamp, "nonce": nonce}


def delivery_key(data: dict[str, str]) -> str | None:
    """The deduplication key of a WeChat/WeCom XML delivery: MsgId for messages; FromUserName + CreateTime + Event for events (they carry no MsgId)."""
    if data.get("MsgId"):
        return data["MsgId"]
    if data.get("MsgType") == "event":
        return f"event:{data.get('FromUserName', '')}:{data.get('CreateTime', '')}:{data.get('Event', '')}"
    return None


def parse_xml(data: bytes | str) -> dict[str, str]:
    """The flat <xml><Name>value</Name>…</xml> WeChat sends; a DOCTYPE (entity tricks) is refused."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise CallbackRejected("XML with a DOCTYPE")
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        raise CallbackRejected("not XML") from None
    return {child.tag: (child.text or "").strip() for child in root}


def text_reply_xml(to_user: str, from_user: str, content: str, create_time: int) -> str:
    """A passive text reply (Official Account): the plaintext XML WeChat shows as the bot's answer."""
    return (f"<xml><ToUserName>{cdata(to_user)}</ToUserName><FromUserName>{cdata(from_user)}</FromUserName>"
            f"<CreateTime>{int(create_time)}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content>{cdata(content)}</Content></xml>")


def cdata(value: str) -> str:
    value = _CONTROL.sub("", value)
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def numbered_choices(reply, text: str = "") -> str:
    """Text platforms answer a choice with its number (the router maps it back to the button's data).
    When `text` (the rendered reply) already lists the choices as "1. …", only the hint is added."""
    if not reply.choices:
        return ""
    if text and all(f"{i}. {c.label}" in text for i, c in enumerate(reply.choices, 1)):
        return "(回复数字选择)"
    lines = [f"  {i}. {c.label}" for i, c in enumerate(reply.choices, 1)]
    return "\n".join(lines) + "\n(回复数字选择)"


def passive_text(deps, replies, fmt: str, limit: int) -> str:
    """All replies to one message as one passive answer, cut at a line within `limit` UTF-8 bytes."""
    parts = []
    for reply in replies:
        text = deps.renderer.render(reply, fmt)
        choices = numbered_choices(reply, text)
        parts.append(f"{text}\n{choices}" if choices else text)
    whole = "\n\n".join(p for p in parts if p.strip())
    if utf8_len(whole) <= limit:
        return whole
    return split_message(whole, limit - utf8_len("\n……"), utf8_len)[0] + "\n……"
