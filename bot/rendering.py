"""Rendering: a handler's `Reply` → the text a platform shows, from Jinja2 templates in content/templates.

Templates are `<name>.txt.j2` (plain text), with optional `<name>.html.j2` (Telegram HTML) and
`<name>.md.j2` (WeCom markdown). HTML falls back to the plain template rendered with autoescape,
so user-supplied values are always escaped.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound, select_autoescape

from bot.messages import Reply

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "content" / "templates"
FORMATS = ("text", "html", "markdown")
_EXT = {"text": "txt", "html": "html", "markdown": "md"}


def cn_date(value: date | datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return f"{value.month}月{value.day}日"


def cn_weekday(value: date) -> str:
    return "周" + "一二三四五六日"[value.weekday()]


def mask_phone(value: str | None) -> str:
    if not value or len(value) < 7:
        return ""
    return value[:3] + "****" + value[-4:]


_TAGS_ONLY = re.compile(r"^\s*(?:\{%[^%]*%\}\s*|\{#[^#]*#\}\s*)+$")


class LineLoader(FileSystemLoader):
    """Templates are written line by line: a line holding only `{% … %}` tags disappears from the output, a
    line with text keeps its line break even when it ends in a tag (`…{% endif %}`), which Jinja's
    trim_blocks would swallow."""

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        lines = source.split("\n")
        out = [line + ("" if _TAGS_ONLY.match(line) else "\n") for line in lines[:-1]]
        return "".join(out) + lines[-1], filename, uptodate


class Renderer:
    def __init__(self, directory: Path = TEMPLATES_DIR):
        loader = LineLoader(str(directory))
        common = dict(loader=loader, undefined=StrictUndefined, trim_blocks=False, lstrip_blocks=True,
                      keep_trailing_newline=False)
        self.plain = Environment(autoescape=False, **common)
        self.html = Environment(autoescape=select_autoescape(default=True, default_for_string=True), **common)
        for env in (self.plain, self.html):
            env.filters["cn_date"] = cn_date
            env.filters["weekday"] = cn_weekday
            env.filters["mask_phone"] = mask_phone

    def render(self, reply: Reply, fmt: str = "text") -> str:
        env = self.html if fmt == "html" else self.plain
        names = [f"{reply.template}.{_EXT[fmt]}.j2", f"{reply.template}.txt.j2"]
        for name in names:
            try:
                template = env.get_template(name)
            except TemplateNotFound:
                continue
            return template.render(**reply.values).strip()
        raise TemplateNotFound(reply.template)

    def exists(self, name: str) -> bool:
        try:
            self.plain.get_template(f"{name}.txt.j2")
        except TemplateNotFound:
            return False
        return True


def split_message(text: str, limit: int, measure=len) -> list[str]:
    """Split at line boundaries so each part is within `limit` (chars, or bytes with a byte measure)."""
    if measure(text) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.split("\n"):
        candidate = f"{current}\n{line}" if current else line
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            parts.append(current)
        while measure(line) > limit:  # a single over-long line: cut at the last fitting character
            cut = len(line)
            while cut > 0 and measure(line[:cut]) > limit:
                cut = max(1, cut * limit // max(measure(line[:cut]), 1)) if measure(line[:cut]) > 2 * limit else cut - 1
            parts.append(line[:cut])
            line = line[cut:]
        current = line
    if current:
        parts.append(current)
    return parts


def utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))
