"""Local console platform: the embedded default when no chat platform is configured.

A person types as a roster member (`/as 张三`) in a named group (`/group 新营子镇换届工作群`) or in a
private chat (`/private`); lines go through the same router and handlers as Telegram and WeChat.
Messages the scheduler sends to console chats are printed as they leave the outbox.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time
from dataclasses import dataclass
from typing import TextIO

from bot.messages import ChatRef, Incoming, Reply, UserRef
from bot.router import split_command

PLATFORM = "console"
_MESSAGE_IDS = itertools.count(time.time_ns() // 1000)  # unique across sessions of one process
CONSOLE_HELP = """控制台命令：
  /as 姓名 [手机后四位]   以名单中某人的身份发言(不在名单中则是未绑定的陌生人)
  /group 群名            进入一个群聊(例如 /group 新营子镇换届工作群)
  /private              切换到与机器人的私聊
  /where                显示当前身份和所在聊天
  /quit                 退出
其他输入都会作为消息发给机器人；/help 查看机器人的命令。"""


@dataclass
class ConsoleState:
    user: str = "访客"
    chat: str | None = None  # group name, None = private chat


class ConsoleSession:
    """One person at the terminal. `handle_line` is what tests drive; `run` reads stdin."""

    def __init__(self, deps, out: TextIO | None = None):
        self.deps = deps
        self.out = out or sys.stdout
        self.state = ConsoleState()

    def _print(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def render(self, reply: Reply) -> str:
        text = self.deps.renderer.render(reply, "text")
        if reply.choices:
            text += "\n" + "\n".join(f"  {i}. {c.label}" for i, c in enumerate(reply.choices, 1)) + "\n(回复数字选择)"
        for att in reply.attachments:
            text += f"\n[附件 {att.filename}, {len(att.content)} 字节]"
        return text

    def incoming(self, text: str) -> Incoming:
        chat = (
            ChatRef(PLATFORM, self.state.chat, True, self.state.chat)
            if self.state.chat
            else ChatRef(PLATFORM, f"private:{self.state.user}", False, None)
        )
        mentioned = any(f"@{name}" in text for name in self.deps.bot_names)
        return Incoming(chat=chat, sender=UserRef(self.state.user, self.state.user), text=text,
                        message_id=str(next(_MESSAGE_IDS)), mentioned=mentioned)

    async def handle_line(self, line: str) -> list[str]:
        """Process one typed line; returns what the console shows (also printed)."""
        line = line.strip()
        if not line:
            return []
        parsed = split_command(line)
        if parsed and parsed[0] in ("as", "group", "private", "where", "console"):
            shown = [self._console_command(*parsed)]
        else:
            replies = await self.deps.router.dispatch(self.incoming(line), self.deps)
            shown = [self.render(r) for r in replies]
        for text in shown:
            self._print(("🤖 " + text.replace("\n", "\n   ")) if not text.startswith("[") else text)
        return shown

    def _console_command(self, name: str, args: str) -> str:
        if name == "as":
            parts = args.split()
            if not parts:
                return "[用法: /as 姓名 [手机后四位]]"
            return self._become(parts[0], parts[1] if len(parts) > 1 else None)
        if name == "group":
            if not args:
                return "[用法: /group 群名]"
            self.state.chat = args[:60]
            with self.deps.uow() as uow:
                chat = uow.chats.ensure(PLATFORM, self.state.chat, True, self.state.chat)
                bound = chat.region.name if chat.region else None
                uow.commit()
            return f"[进入群聊 {self.state.chat}{'，已绑定' + bound if bound else '，尚未绑定乡镇'}]"
        if name == "private":
            self.state.chat = None
            return "[切换到私聊]"
        if name == "where":
            return f"[{self.state.user} @ {self.state.chat or '私聊'}]"
        return CONSOLE_HELP

    def _become(self, name: str, last4: str | None) -> str:
        """The console is the server's own terminal: speaking as a roster member links that identity."""
        with self.deps.uow() as uow:
            people = [p for p in uow.persons.by_name(name) if not last4 or (p.phone or "").endswith(last4)]
            if len(people) > 1:
                return f"[名单中有{len(people)}个{name}，请加手机后四位: /as {name} 1234]"
            user_id = name if not last4 else f"{name}#{last4}"
            self.state.user = user_id
            if people:
                uow.identities.link(PLATFORM, user_id, people[0], self.deps.clock.now())
                uow.commit()
                return f"[现在以 {name} 的身份发言]"
        return f"[现在以 {name} 的身份发言(不在名单中，未绑定)]"

    async def run(self, stdin: TextIO | None = None, outbox_poll: float = 2.0) -> None:
        stdin = stdin or sys.stdin
        self._print("换届助手 本地控制台。输入 /console 查看控制台命令，/help 查看机器人命令。")
        loop = asyncio.get_running_loop()
        printer = asyncio.create_task(self._print_outbox(outbox_poll))
        try:
            while True:
                prompt = f"{self.state.user}@{self.state.chat or '私聊'}> "
                print(prompt, end="", file=self.out, flush=True)
                line = await loop.run_in_executor(None, stdin.readline)
                if not line or line.strip() in ("/quit", "/exit"):
                    break
                await self.handle_line(line)
        finally:
            printer.cancel()

    async def _print_outbox(self, every: float) -> None:
        sender = self.deps.extras.get("sender")
        while True:
            await asyncio.sleep(every)
            if sender is not None:
                await sender.flush_once()


class ConsoleTransport:
    """Delivers outbox messages addressed to console chats by printing them."""

    platform = PLATFORM
    fmt = "text"
    limit = 100_000

    def __init__(self, out: TextIO | None = None):
        self.out = out or sys.stdout
        self.sent: list[tuple[str, str]] = []

    async def send(self, target: str, text: str, reply: Reply) -> None:
        where = "私聊 " + target.removeprefix("private:") if target.startswith("private:") else target
        self.sent.append((target, text))
        print(f"\n📣 [{where}] {text}", file=self.out, flush=True)
