"""Pages rendered once and reused: the same markup for every visitor of one language.

The time picker (two weeks of open times, computed from hours, exceptions and appointments)
takes milliseconds to render and comes out the same for every patient until something it
shows changes. A page is kept under everything it depends on: the view's own key (e.g. the
availability version and the day), the URL's arguments and the language. So a reused page
carries nothing of one visitor (no form tokens).

Each server process keeps its own cache, bounded in entries and age: a page is reused for at
most ``PAGE_CACHE_SECONDS`` and never once its key changes. Nothing is cached while templates
reload (development), for pages carrying flashed messages, or for long query strings (a bot
inventing arguments would only evict other pages).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any

from cachetools import TTLCache
from flask import current_app, request, session
from flask_babel import get_locale

EXTENSION = "booking.pagecache"
MAX_QUERY_BYTES = 200


class PageCache:
    """A bounded, expiring map from keys to rendered pages (or what a view keeps of one),
    safe across threads."""

    def __init__(self, maxsize: int, seconds: float) -> None:
        self._pages: TTLCache[Hashable, Any] = TTLCache(maxsize=maxsize, ttl=seconds)
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            return self._pages.get(key)

    def put(self, key: Hashable, page: Any) -> None:
        with self._lock:
            self._pages[key] = page

    def __len__(self) -> int:
        with self._lock:
            return len(self._pages)

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()


def app_cache(name: str = EXTENSION) -> PageCache | None:
    """The process's cache called ``name``, with the page cache's bounds; None while
    templates reload (development) or when page caching is off."""
    app = current_app
    if app.jinja_env.auto_reload or not app.config["PAGE_CACHE_SECONDS"]:
        return None
    cache = app.extensions.get(name)
    if cache is None:
        cache = app.extensions[name] = PageCache(
            app.config["PAGE_CACHE_ENTRIES"], app.config["PAGE_CACHE_SECONDS"]
        )
    return cache


def cached_page(key: Hashable, render: Callable[[], str]) -> bytes:
    """The page for this URL, language and ``key``, rendered by ``render`` when not kept,
    as UTF-8 (encoded once, not on every response).

    ``key`` must name everything else the page depends on; ``None`` means "do not reuse"
    (e.g. the version it depends on could not be read)."""
    cache = app_cache()
    if (
        cache is None
        or key is None
        or request.method != "GET"
        or len(request.query_string) > MAX_QUERY_BYTES
        or "_flashes" in session
    ):
        return render().encode()
    full_key = (request.endpoint, request.query_string, str(get_locale() or ""), key)
    page = cache.get(full_key)
    if page is None:
        page = render().encode()
        cache.put(full_key, page)
    return page
