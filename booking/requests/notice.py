"""The privacy notice a patient consents to, and the consent record's fingerprint of it.

The notice's wording is one template (``patients/_privacy_notice.html``) filled from the
settings (controller, contacts, supervisory authority, processors, retention). What the
patient agreed to is identified by the notice's version, the language it was shown in and the
SHA-256 of its wording as rendered in that language: an archived copy of the notice can be
checked against the hash, and a changed setting changes the hash even when the version was
not raised.
"""

from __future__ import annotations

import hashlib

from flask import current_app, render_template
from flask_babel import force_locale

TEMPLATE = "patients/_privacy_notice.html"


def wording(locale: str) -> str:
    """The notice's text as shown to a patient reading in ``locale``."""
    with force_locale(locale):
        return render_template(TEMPLATE)


def fingerprint(locale: str) -> str:
    """SHA-256 (hex) of the notice's wording in ``locale``, made once per server process and
    language (the settings it shows do not change while the process runs)."""
    cache: dict[tuple[str, str], str] = current_app.extensions.setdefault(
        "spineconsult_notice_hashes", {}
    )
    key = (str(current_app.config["PRIVACY_NOTICE_VERSION"]), locale)
    if key not in cache:
        cache[key] = hashlib.sha256(wording(locale).encode("utf-8")).hexdigest()
    return cache[key]
