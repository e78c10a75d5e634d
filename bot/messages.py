"""The normalized message types every platform adapter produces and consumes.

adapter → `Incoming` → router → handler → `Reply` → adapter renders it with `content/templates`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ChatRef:
    platform: str  # console | telegram | wecom | mp
    id: str
    is_group: bool = False
    title: str | None = None


@dataclass(frozen=True)
class UserRef:
    id: str
    name: str | None = None
    username: str | None = None


@dataclass(frozen=True)
class Incoming:
    chat: ChatRef
    sender: UserRef
    text: str
    message_id: str | None = None
    edited: bool = False  # the platform says this is an edit of message_id
    callback: str | None = None  # data of a pressed button
    mentioned: bool = False  # the bot was @-mentioned
    event: str | None = None  # bot_added, bot_removed …
    raw: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Choice:
    """A button (Telegram inline keyboard) or a numbered option (text platforms)."""

    label: str
    data: str


@dataclass(frozen=True)
class Attachment:
    kind: str  # document | image
    filename: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class Mention:
    name: str
    platform_user_id: str | None = None  # for Telegram text_mention / WeCom userid
    username: str | None = None
    mobile: str | None = None


@dataclass(frozen=True)
class Reply:
    """What a handler wants said: a template name and the values it needs.

    Adapters render it in their own format (plain text, Telegram HTML, WeCom markdown).
    """

    template: str
    values: dict[str, Any] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    attachments: tuple[Attachment, ...] = ()
    mentions: tuple[Mention, ...] = ()
    edit_message_id: str | None = None  # replace the message with this id (button choices)
    notice: str | None = None  # short toast for a button press

    @classmethod
    def of(cls, template: str, /, *, choices=(), attachments=(), mentions=(), **values: Any) -> Reply:
        return cls(template, values, tuple(choices), tuple(attachments), tuple(mentions))
