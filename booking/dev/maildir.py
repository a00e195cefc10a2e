"""Development only: the Maildir the local SMTP sink writes (``booking.dev.mailsink``) and the
viewer lists (``booking.dev.views``), at ``DEV_MAILDIR``."""

from __future__ import annotations

import mailbox
import os

MAILDIR_FOLDERS = ("cur", "new", "tmp")


def open_maildir(path: str | os.PathLike[str]) -> mailbox.Maildir:
    """The Maildir at ``path``, its directory and its ``cur``, ``new`` and ``tmp`` folders
    made when any is missing: ``mailbox.Maildir`` makes them only when it makes the directory,
    so a directory left empty (copied without its empty folders, emptied by a clean-up) could
    be neither written nor read."""
    for folder in MAILDIR_FOLDERS:
        os.makedirs(os.path.join(path, folder), exist_ok=True)
    return mailbox.Maildir(path, factory=None, create=False)
