"""A commit whose answer never comes: the database committed, then the connection failed
(a restart, a cut network, a failover) before the answer reached the app. The app cannot
know whether the change was stored, so the files it saved for the change must stay: deleted,
a committed row would name a file that is gone for good (never in any backup). The
reconciliation removes them later if no row names them."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, select
from sqlalchemy.engine.default import DefaultDialect
from sqlalchemy.orm import Session

from booking.documents.models import Document
from booking.extensions import db
from booking.messages.models import Message
from booking.requests.files import reconcile_files
from tests.factories import make_request
from tests.support import csrf_token, open_manage_link, pdf_bytes, stored_files


@pytest.fixture
def lost_reply(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The next commit of a transaction that added a document is made, then its answer is
    lost: the driver's own error for a connection gone, as each database's driver raises it."""
    real_commit = DefaultDialect.do_commit
    armed = {"document": False, "left": 1}

    def saw_document(session: Session, _context: Any) -> None:
        if any(isinstance(row, Document) for row in session.new):
            armed["document"] = True

    def commit_then_lose_the_answer(self: DefaultDialect, connection: Any) -> None:
        real_commit(self, connection)
        if armed["document"] and armed["left"]:
            armed["left"] -= 1
            gone = sqlite3.OperationalError if self.name == "sqlite" else psycopg.OperationalError
            raise gone("server closed the connection unexpectedly")

    event.listen(Session, "after_flush", saw_document)
    monkeypatch.setattr(DefaultDialect, "do_commit", commit_then_lose_the_answer)
    yield
    event.remove(Session, "after_flush", saw_document)


def test_a_document_committed_whose_answer_was_lost_keeps_its_file(
    app: Flask, client: FlaskClient, upload_dir: Any, lost_reply: None
) -> None:
    with app.app_context():
        url = open_manage_link(client, make_request())
    response = client.post(
        url + "/documents",
        data={
            "docs-csrf_token": csrf_token(client, url),
            "docs-documents-0-file": (io.BytesIO(pdf_bytes()), "mri.pdf"),
        },
        content_type="multipart/form-data",
    )
    # Found stored after all (a row names the file): added, as it would have been.
    assert response.status_code == 302
    assert "Thank you: 1 document added." in client.get(url).get_data(as_text=True)
    with app.app_context():
        [stored] = db.session.scalars(select(Document.stored_name)).all()
        found = reconcile_files(dry_run=True)
    assert [p.name for p in stored_files(upload_dir)] == [stored]
    assert found.missing_files == []


def test_a_message_the_database_failed_to_store_is_shown_again_with_the_text(
    app: Flask, client: FlaskClient, failing_commit: Callable[[], None]
) -> None:
    """The patient's message came back as the bare 503 page, the text gone (every page is
    no-store: Back shows an empty form). Now the page comes back with it and says it was not
    sent: with no file to look for, the form's one-time key was looked for, and no message
    has it."""
    with app.app_context():
        url = open_manage_link(client, make_request())
    typed = "The pain in my left leg has been worse since Monday, here is my GP's letter."
    data = {"msg-csrf_token": csrf_token(client, url), "msg-body": typed}
    failing_commit()
    failed = client.post(f"{url}/messages", data=data)
    assert failed.status_code == 503
    page = failed.get_data(as_text=True)
    assert (
        "Our system had a problem, so your message was not sent. It is still below: please "
        "send it again in a few minutes."
    ) in page
    assert typed.replace("'", "&#39;") in page
    with app.app_context():
        assert db.session.scalars(select(Message)).all() == []
    assert client.post(f"{url}/messages", data=data).status_code == 302  # sent again
    with app.app_context():
        assert [m.body for m in db.session.scalars(select(Message))] == [typed]
