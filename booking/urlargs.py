"""Addresses: the public address of a page for an email, and reading values from the URL's
query string safely (anything odd is treated as absent).

A hand-edited or hostile URL must never cause a 500, so each reader refuses what the
database or the date arithmetic cannot take (non-ASCII digits, huge numbers, year 1 or 9999,
control characters).
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import abort, current_app, redirect, request, url_for
from werkzeug.routing.converters import IntegerConverter, UnicodeConverter

MAX_INT = 2**31 - 1
FIRST_YEAR, LAST_YEAR = 1900, 2999
CONTROL_CHARS_RE = re.compile(r"[\x00-\x1f\x7f]")


def public_url(path: str) -> str:
    """The absolute address of ``path`` (starting with "/") as patients and staff reach the
    site (``PUBLIC_BASE_URL``): emails are composed by the worker, outside any request, so
    they cannot take the host from one."""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + path


def redirect_if_written_otherwise(name: str, value: str) -> None:
    """On a GET, send an address whose ``name`` segment is written another way than ``value``
    (a reference typed "sc 7k4m q2xd") to the page's own address, query string kept: a page
    has one address, so its links, forms and bookmarks do too. Any other method goes on, so
    a form posted to such an address still does what it did."""
    written = request.view_args or {}
    if request.method not in ("GET", "HEAD") or written.get(name, value) == value:
        return
    values = {**request.args.to_dict(flat=False), **written, name: value}
    abort(redirect(url_for(request.endpoint or "", **values)))


def int_arg(value: str | None, *, minimum: int = 1, maximum: int = MAX_INT) -> int | None:
    text = (value or "").strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return None
    number = int(text)
    return number if minimum <= number <= maximum else None


def date_arg(value: str | None) -> date | None:
    try:
        day = date.fromisoformat((value or "").strip())
    except ValueError:
        return None
    return day if FIRST_YEAR <= day.year <= LAST_YEAR else None


def text_arg(value: str | None, max_length: int) -> str | None:
    text = CONTROL_CHARS_RE.sub("", value or "").strip()[:max_length]
    return text or None


class BoundedIntConverter(IntegerConverter):
    """``<int:...>`` in a route, at most the database's integer: a larger id in a hand-edited
    URL is a 404, not an overflow in SQLite or PostgreSQL."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", MAX_INT)
        super().__init__(map, *args, **kwargs)


class PlainSegmentConverter(UnicodeConverter):
    """The default ``<name>`` path segment without control characters: PostgreSQL refuses a
    NUL in a text value, so such a URL is a 404 before any query sees it."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00-\\x1f\\x7f]", 1)


class SignedTokenConverter(UnicodeConverter):
    """``<signed:...>``: an itsdangerous token (three dot-separated base64url parts), so a
    route for the older manage links never swallows a page's own name (``/cancel``)."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = r"[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+"


URL_CONVERTERS = {
    "int": BoundedIntConverter,
    "signed": SignedTokenConverter,
    "default": PlainSegmentConverter,
    "string": PlainSegmentConverter,
}
