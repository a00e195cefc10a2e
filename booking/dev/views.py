"""Development only: the emails the local SMTP sink received, so a newcomer can read them.

Registered only when ``DEV_MAIL_VIEWER`` is on (the development settings); never in production.
"""

from __future__ import annotations

import mailbox
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

from flask import Blueprint, abort, current_app, render_template

from booking.dev.maildir import open_maildir
from booking.extensions import talisman
from booking.timeutil import clinic_dt

bp = Blueprint("dev", __name__, url_prefix="/dev")


def _maildir() -> mailbox.Maildir:
    return open_maildir(Path(current_app.config["DEV_MAILDIR"]))


def _parse(raw: mailbox.MaildirMessage) -> EmailMessage:
    from email import message_from_bytes

    return message_from_bytes(raw.as_bytes(), policy=default)  # type: ignore[return-value]


def _sent_at(msg: EmailMessage) -> datetime | None:
    """When the email says it was sent (its Date header), as an aware datetime; None without
    a date that parses. A date with no zone ("-0000") is read as UTC."""
    try:
        header = msg["Date"]
        sent = header.datetime if header is not None else None
    except (TypeError, ValueError):  # a Date header that is no date
        return None
    if sent is None:
        return None
    return sent if sent.tzinfo is not None else sent.replace(tzinfo=UTC)


def _when(sent: datetime | None) -> str:
    """A sent time as the staff pages write times: the clinic's ("6 Dec 2026, 16:53"), not
    the header's UTC ("Sun, 06 Dec 2026 15:53:26 +0000")."""
    return clinic_dt(sent, "short") if sent is not None else ""


@bp.get("/mail")
def mail_list() -> str:
    box = _maildir()
    messages = []
    for key, raw in box.items():
        msg = _parse(raw)
        sent = _sent_at(msg)
        messages.append({"key": key, "msg": msg, "sent": sent, "when": _when(sent)})
    messages.sort(key=lambda m: m["sent"].timestamp() if m["sent"] else 0.0, reverse=True)
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
        when=_when(_sent_at(msg)),
        text=text.get_content() if text else "",
        html=html.get_content() if html else "",
    )
