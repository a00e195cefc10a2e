"""PDFs of the app's own pages, made on the server with WeasyPrint (it needs pango: Debian's
libpango-1.0-0).

A page with patient data must never make WeasyPrint fetch anything from the network: a URL in
the page (a stylesheet, an image, however it got there) would tell another server that this
patient's record was printed, and wait on it. ``OwnStylesheets`` serves the app's own CSS
files from disk and refuses every other URL, whatever its scheme or host.

Importing this module imports WeasyPrint (half a second): import it where a PDF is made.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import unquote, urlsplit

from flask import current_app, request
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse
from werkzeug.security import safe_join

log = logging.getLogger(__name__)


class OwnStylesheets(URLFetcher):
    """Serves ``<origin><static prefix>/css/<name>.css`` from the app's static folder, read
    from disk; refuses everything else (WeasyPrint logs the refusal and goes on without it)."""

    def __init__(self, origin: str, static_prefix: str, static_folder: str) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False)
        self.origin = origin.rstrip("/")
        self.css_prefix = static_prefix.rstrip("/") + "/css/"
        self.static_folder = static_folder

    def fetch(self, url: str, headers: dict | None = None) -> URLFetcherResponse:
        path = self.local_path(url)
        if path is None:
            log.warning("pdf_fetch_refused: a PDF's page asked for %.200s", url)
            raise ValueError(f"not one of the app's stylesheets: {url[:200]}")
        return URLFetcherResponse(
            url, body=path.read_bytes(), headers={"Content-Type": "text/css; charset=utf-8"}
        )

    def local_path(self, url: str) -> Path | None:
        """The file ``url`` names, when it is one of the app's own stylesheets."""
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}" != self.origin or parts.query or parts.fragment:
            return None
        path = unquote(parts.path)
        if not path.startswith(self.css_prefix) or not path.endswith(".css"):
            return None
        found = safe_join(self.static_folder, "css", path.removeprefix(self.css_prefix))
        if found is None or not Path(found).is_file():
            return None
        return Path(found)


def render_pdf(html: str) -> bytes:
    """``html`` (a page rendered in this request) as a PDF, for print media (A4 and margins
    come from the page's print stylesheet). Relative URLs resolve against this site."""
    app = current_app
    origin = request.host_url
    fetcher = OwnStylesheets(origin, app.static_url_path or "/static", app.static_folder or "")
    return HTML(string=html, base_url=origin, url_fetcher=fetcher).write_pdf()
