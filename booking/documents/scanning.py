"""Malware scanning of uploads with ClamAV's daemon (clamd), before anything is stored.

Documents are encrypted at rest, so a scanner on the server's disk cannot see them: each
upload is streamed to clamd (its INSTREAM command) on its way in. The verdict is one of
``ScanStatus``; a scanner that is down or too slow (``CLAMAV_TIMEOUT``) raises
``ScannerUnavailable`` and the caller decides, by ``CLAMAV_WHEN_DOWN``, to refuse the file or
to hold it as not yet scanned until the worker's retry (``rescan_pending``) passes.
"""

from __future__ import annotations

import enum
import logging
from typing import BinaryIO

from blinker import Namespace
from clamav_client.clamd import ClamdError, ClamdNetworkSocket, ClamdUnixSocket
from flask import current_app

log = logging.getLogger(__name__)

signals = Namespace()
# Sent with ``signature`` (clamd's name for what it found) whenever a file is refused or
# removed as infected; the composition layer records it in the audit trail.
upload_infected = signals.signal("upload-infected")


class ScanStatus(enum.Enum):
    CLEAN = "clean"  # clamd found nothing
    PENDING = "pending"  # the scanner was down: held, not shown to staff until a retry passes
    INFECTED = "infected"  # found later by the retry: the file was removed
    SKIPPED = "skipped"  # scanning was off when it was uploaded (development, older files)


# What staff may open: a file held for scanning or removed as infected is not served.
SERVABLE = (ScanStatus.CLEAN, ScanStatus.SKIPPED)


class ScannerUnavailable(RuntimeError):  # noqa: N818 - reads better at the call sites
    """clamd could not be reached or did not answer in time."""


class Infected(ValueError):  # noqa: N818 - reads better at the call sites
    """clamd found malware; ``signature`` is its name for it."""

    def __init__(self, signature: str) -> None:
        super().__init__(signature)
        self.signature = signature


def scanning_enabled() -> bool:
    return bool(current_app.config["CLAMAV_ENABLED"])


# A health probe waits this long for clamd's PONG, not CLAMAV_TIMEOUT (a scan's).
PING_TIMEOUT_SECONDS = 2


def scanner_answers(timeout: float = PING_TIMEOUT_SECONDS) -> bool:
    """Whether clamd answers a PING within ``timeout`` seconds."""
    client = _client(timeout)
    try:
        return client.ping().strip() == "PONG"
    except (ClamdError, OSError) as error:
        log.warning("virus scanner does not answer: %s", type(error).__name__)
        return False
    finally:
        # The client leaves its socket open when the connection itself fails.
        sock = getattr(client, "clamd_socket", None)
        if sock is not None:
            sock.close()


def _client(timeout: float | None = None) -> ClamdNetworkSocket:
    address = current_app.config["CLAMAV_ADDRESS"]
    timeout = timeout or current_app.config["CLAMAV_TIMEOUT"]
    if address.startswith("/"):
        return ClamdUnixSocket(address, timeout=timeout)
    host, _, port = address.rpartition(":")
    return ClamdNetworkSocket(host or "127.0.0.1", int(port), timeout=timeout)


def scan(stream: BinaryIO) -> None:
    """Stream the rest of ``stream`` to clamd; return if it is clean.

    Raises ``Infected`` with clamd's signature name, or ``ScannerUnavailable`` when clamd is
    down, refuses the stream (too long for its StreamMaxLength) or does not answer within
    ``CLAMAV_TIMEOUT`` seconds.
    """
    try:
        result = _client().instream(stream)
    except (ClamdError, OSError) as error:
        # OSError too: the client lets a time-out while sending escape unwrapped.
        log.warning("virus scanner unavailable: %s", type(error).__name__)
        raise ScannerUnavailable(type(error).__name__) from error
    status, signature = result.get("stream", (None, None))
    if status == "FOUND":
        raise Infected(str(signature))
    if status != "OK":
        log.warning("virus scanner answered %r", status)
        raise ScannerUnavailable(f"unexpected answer {status!r}")
