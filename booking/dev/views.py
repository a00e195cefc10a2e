"""Development only: the emails the local SMTP sink received, so a newcomer can read them.

Registered only when ``DEV_MAIL_VIEWER`` is on (the development settings); never in production.
"""

from __future__ import annotations

import mailbox
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

from booking.extensions import talisman

bp = Blueprint("dev", __name__, url_prefix="/dev")


def _maildir() -> mailbox.Maildir:
    path = Path(current_app.config["DEV_MAILDIR"])
    path.parent.mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(path, factory=None, create=True)


def _parse(raw: mailbox.MaildirMessage) -> EmailMessage:
    from email import message_from_bytes

    return message_from_bytes(raw.as_bytes(), policy=default)  # type: ignore[return-value]


@bp.get("/mail")
def mail_list() -> str:
    box = _maildir()
    messages = []
    for key, raw in box.items():
        msg = _parse(raw)
        messages.append({"key": key, "msg": msg, "date": msg["Date"]})
    messages.sort(
        key=lambda m: m["msg"]["Date"].datetime.timestamp() if m["msg"]["Date"] else 0.0,
        reverse=True,
    )
    return render_template("dev/mail_list.html", messages=messages)


@bp.get("/mail/<key>")
# Development only: let the email's own inline styles show in the preview.
@talisman(
    content_security_policy={
        "default-src": "'self'",
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data:",
        "frame-ancestors": "'none'",
    }
)
def mail_show(key: str) -> str:
    box = _maildir()
    try:
        raw = box[key]
    except KeyError:
        abort(404)
    msg = _parse(raw)
    text = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    return render_template(
        "dev/mail_show.html",
        msg=msg,
        text=text.get_content() if text else "",
        html=html.get_content() if html else "",
    )
