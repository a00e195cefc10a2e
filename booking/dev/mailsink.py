"""Development only: the local SMTP sink `make run` starts (Procfile's ``mail``), writing each
email it receives into the Maildir the viewer lists (``DEV_MAILDIR``).

aiosmtpd's own ``Mailbox`` handler opens the Maildir as ``mailbox.Maildir`` does, which makes
its ``cur``, ``new`` and ``tmp`` folders only when the directory itself is missing: an
``instance/mail`` left empty made every delivery fail, and the sink answered each email with
an SMTP 500, which the worker takes as a refusal of the email and fails for good. This
handler makes the folders at start and again before each email (``open_maildir``), so one
removed while the sink runs (``make clean-dev``) is made again.
"""

from __future__ import annotations

import os
from email.message import Message

from aiosmtpd.handlers import Mailbox

from booking.dev.maildir import open_maildir


class Maildir(Mailbox):
    """aiosmtpd's ``Mailbox`` handler on a Maildir whose folders it makes when missing:
    ``python -m aiosmtpd -c booking.dev.mailsink.Maildir DIRECTORY``."""

    def __init__(
        self, mail_dir: str | os.PathLike[str], message_class: type[Message] | None = None
    ) -> None:
        open_maildir(mail_dir)
        super().__init__(mail_dir, message_class)

    def handle_message(self, message: Message) -> None:
        open_maildir(self.mail_dir)
        super().handle_message(message)
