"""Faults: the database away gives a clear 503, and the app recovers by itself."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from booking import create_app
from booking.extensions import db


def test_database_unreachable_is_a_friendly_503_and_recovery_is_automatic(
    tmp_path: Path,
) -> None:
    missing_dir = tmp_path / "not-yet"
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{missing_dir / 'db.sqlite3'}",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
        }
    )
    client = app.test_client()
    try:
        response = client.get("/request/time")  # reads the schedule from the database
        assert response.status_code == 503
        page = response.get_data(as_text=True)
        assert "we cannot confirm it was saved" in page
        assert "Traceback" not in page and "sqlite" not in page.lower()

        # The database comes back: the next request works without a restart.
        missing_dir.mkdir()
        with app.app_context():
            db.create_all()
        assert client.get("/request/time").status_code in (200, 302)
        assert client.get("/request/start").status_code == 200
    finally:
        with app.app_context():
            db.engine.dispose()


def test_postgresql_server_down_is_a_friendly_503(tmp_path: Path) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://postgres@127.0.0.1:1/test",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
        }
    )
    try:
        response = app.test_client().get("/request/time")
        assert response.status_code == 503
        assert "we cannot confirm it was saved" in response.get_data(as_text=True)
    finally:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    from tests.smtp import free_port

    app_settings["MAIL_PORT"] = free_port()  # nothing listens there yet: the server is down
    return app_settings


def test_mail_server_down_while_many_requests_arrive_loses_nothing_and_sends_once(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """10 requests arrive while the mail server is down: all stored; when it is back, each
    of the 20 emails is delivered exactly once, with its stored Message-ID. (Each request
    goes through every step, about 30 pages, and costs about a second of CPU: no count in
    the outbox's code is near 10 (the sweep takes up to 500 at a time), so 10 say as much
    as 40 or 100 did.)"""
    from datetime import timedelta

    from sqlalchemy import select, update

    from booking.notifications.models import OutboxEmail, OutboxStatus
    from booking.notifications.services import deliver_outbox_email, requeue_stalled_emails
    from booking.requests.models import ConsultationRequest
    from booking.timeutil import now_utc
    from tests.smtp import SmtpServer
    from tests.support import post_request, valid_answers

    requests = 10
    for n in range(requests):
        response = post_request(client, valid_answers(email=f"patient{n}@example.com"))
        assert response.status_code == 303
    with app.app_context():
        assert len(db.session.scalars(select(ConsultationRequest.id)).all()) == requests
        ids = list(db.session.scalars(select(OutboxEmail.id)))
        assert len(ids) == 2 * requests
        for email_id in ids:  # every attempt fails: nothing listens on the mail port
            deliver_outbox_email(email_id)
        assert all(
            e.status == OutboxStatus.PENDING and e.attempts == 1
            for e in db.session.scalars(select(OutboxEmail))
        )
    server = SmtpServer(port=app.config["MAIL_PORT"]).start()
    try:
        with app.app_context():
            # Later: the sweep finds every email whose retry is overdue and delivers it; a
            # second sweep and duplicate tasks send nothing more.
            db.session.execute(
                update(OutboxEmail).values(next_attempt_at=now_utc() - timedelta(hours=1))
            )
            db.session.commit()
            due = requeue_stalled_emails()
            assert sorted(due) == sorted(ids)
            for email_id in due + due:
                deliver_outbox_email(email_id)
            assert requeue_stalled_emails() == []
            rows = db.session.scalars(select(OutboxEmail)).all()
            assert all(e.status == OutboxStatus.SENT for e in rows)
            stored_ids = sorted(e.message_id for e in rows)
        received = server.collector.wait_for(2 * requests)
        assert len(received) == 2 * requests
        assert sorted(r.message["Message-ID"] for r in received) == stored_ids
    finally:
        server.stop()


def test_a_database_error_while_the_request_ends_answers_the_503_page_with_its_request_id(
    app: Flask, client: FlaskClient
) -> None:
    """The end-of-request rollback fails (as during a PostgreSQL restart): the app's 503 page
    with the request id, not a bare 500 from the server; the next request works."""
    import sqlalchemy as sa
    from sqlalchemy.exc import OperationalError

    failing = {"rollback": False}

    def rollback_fails(_connection: object) -> None:
        if failing["rollback"]:
            failing["rollback"] = False
            raise OperationalError(
                "ROLLBACK", {}, Exception("server closed the connection unexpectedly")
            )

    with app.app_context():
        engine = db.engine
    sa.event.listen(engine, "rollback", rollback_fails)
    try:
        failing["rollback"] = True
        response = client.get("/request/time", headers={"X-Request-ID": "fault-at-teardown-1"})
        assert not failing["rollback"], "the fault was not reached"
        assert response.status_code == 503
        assert response.headers["X-Request-ID"] == "fault-at-teardown-1"
        page = response.get_data(as_text=True)
        assert "We are having a technical problem" in page
        assert "fault-at-teardown-1" in page
        assert "Traceback" not in page and "ROLLBACK" not in page
        assert client.get("/request/time").status_code in (200, 302)
    finally:
        sa.event.remove(engine, "rollback", rollback_fails)


@contextlib.contextmanager
def _app_counting_limits_in(
    tmp_path: Path, storage_uri: str, **settings: Any
) -> Iterator[FlaskClient]:
    """A client of an app whose rate limits are counted at ``storage_uri`` (three sign-ins a
    minute), with a coordinator to sign in as; ``settings`` on top."""
    from tests.factories import make_staff

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "UPLOAD_DIR": str(tmp_path / "uploads"),
            "RATELIMIT_STORAGE_URI": storage_uri,
            "LOGIN_RATE_LIMIT": "3 per minute",
            **settings,
        }
    )
    try:
        with app.app_context():
            db.create_all()
            make_staff("coordinator", "coord@example.com")
        yield app.test_client()
    finally:
        with app.app_context():
            db.engine.dispose()


def test_rate_limit_storage_unreachable_still_serves_and_still_limits(tmp_path: Path) -> None:
    """The limits' counts live in Redis in production: with Redis away the pages must still
    answer (not a 500 before the view runs), and the limits still hold, counted in memory."""
    from tests.factories import PASSWORD
    from tests.support import AuthActions

    # Nothing listens on port 9.
    with _app_counting_limits_in(tmp_path, "redis://127.0.0.1:9/0") as client:
        assert client.get("/request/start").status_code == 200
        answers = [
            AuthActions(client).attempt("coord@example.com", "guessing").status_code
            for _ in range(3)
        ]
        assert answers == [401, 401, 401]
        assert AuthActions(client).attempt("coord@example.com", PASSWORD).status_code == 429


def test_a_rate_limit_storage_that_never_answers_is_not_waited_for_for_ever(
    tmp_path: Path,
) -> None:
    """A Redis gone without a trace (a machine down, a firewall dropping packets), or one that
    takes the connection and never answers, with a RATELIMIT_STORAGE_URI without timeouts of
    its own: redis-py would wait for ever, and every page with a limit with it. The counts'
    connections time out (``RATELIMIT_STORAGE_OPTIONS``), then the limits go on in memory."""
    import socket
    import threading

    from config import Config
    from tests.factories import PASSWORD
    from tests.support import AuthActions

    # Both timeouts, a few seconds each. Here the same ones at half a second: the first page
    # and each of Flask-Limiter's checks whether the storage is back wait for one (three
    # times 5 seconds otherwise).
    timeouts = Config.RATELIMIT_STORAGE_OPTIONS
    assert timeouts.keys() == {"socket_connect_timeout", "socket_timeout"}
    assert all(0 < seconds <= 5 for seconds in timeouts.values()), timeouts
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing is read or said
        storage = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        with _app_counting_limits_in(
            tmp_path, storage, RATELIMIT_STORAGE_OPTIONS=dict.fromkeys(timeouts, 0.5)
        ) as client:
            answers: list[int] = []

            def sign_in() -> None:
                for password in ("guessing", "guessing", "guessing", PASSWORD):
                    answers.append(
                        AuthActions(client).attempt("coord@example.com", password).status_code
                    )

            signing_in = threading.Thread(target=sign_in, daemon=True)
            signing_in.start()
            signing_in.join(60)
            assert not signing_in.is_alive(), f"the pages waited for the storage: {answers}"
            assert answers == [401, 401, 401, 429]


def test_a_rate_limit_storage_lost_during_a_sign_in_still_answers_it(
    app_settings: dict[str, Any], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Redis goes away while a sign-in is being checked: the failed attempt is counted after
    the page is made (``deduct_when``), against a storage that no longer answers. The staff
    member gets the sign-in page's answer, not the 500 page, and the limit per account still
    holds afterwards, counted in memory (the count so far is lost with Redis)."""
    from flask import request as current_request

    from tests.factories import make_staff
    from tests.support import AuthActions, running_redis

    with running_redis(tmp_path) as redis:
        app_settings["RATELIMIT_STORAGE_URI"] = f"redis://127.0.0.1:{redis.port}/0"
        app_settings["LOGIN_ACCOUNT_RATE_LIMIT"] = "3 per minute"
        # As gunicorn serves it: an error becomes the error page, not the test's exception.
        app_settings["PROPAGATE_EXCEPTIONS"] = False
        app: Flask = request.getfixturevalue("app")
        lose_redis = {"during": False}

        @app.after_request  # runs before the limiter's own (Flask runs them last first)
        def _redis_goes_away(response: Any) -> Any:
            if lose_redis["during"] and current_request.method == "POST":
                lose_redis["during"] = False
                redis.stop()
            return response

        with app.app_context():
            make_staff("coordinator", "coord@example.com")
        attempt = AuthActions(app.test_client()).attempt
        assert attempt("coord@example.com", "guessing").status_code == 401  # counted in Redis
        lose_redis["during"] = True
        lost = attempt("coord@example.com", "guessing")
        assert redis.process.poll() is not None, "Redis was not stopped"
        assert lost.status_code == 401
        assert "That email address and password do not match." in lost.get_data(as_text=True)
        # The limit goes on in memory: this attempt and two more, then refused.
        answers = [attempt("coord@example.com", "guessing").status_code for _ in range(3)]
        assert answers == [401, 401, 429]


def test_a_full_temporary_disk_while_files_arrive_says_so_and_keeps_the_draft(
    app: Flask, client: FlaskClient, upload_dir: Path
) -> None:
    """The server's disk is full: Werkzeug cannot spool the posted file to its temporary
    folder while it reads the form, before the documents step's own handling of a full
    upload folder can answer. The patient is told the server could not store it (503, the
    message beside the file for the upload script), not the page of an unexpected error;
    nothing of the post is kept, and the answers already saved are."""
    from flask import Request
    from sqlalchemy import func, select

    from booking.requests.drafts import DraftDocument
    from booking.requests.models import ConsultationRequest
    from tests.support import fill_every_step, pdf_bytes, send_request, upload

    full = Path("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
    if not full.exists():
        pytest.skip("no /dev/full on this system")

    opened: list[Any] = []

    class FullDisk(Request):
        def _get_file_stream(self, *_args: Any, **_kwargs: Any) -> Any:
            opened.append(full.open("w+b"))
            return opened[-1]

    fill_every_step(client)
    app.request_class = FullDisk
    scan = (pdf_bytes(), "mri.pdf")
    response = upload(client, scan)
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Our system is short of storage space just now" in page
    assert "Retry-After" in response.headers
    scripted = client.post(
        "/request/steps/documents",
        data={"files": [(io.BytesIO(pdf_bytes()), "mri.pdf")], "nav": "upload"},
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert scripted.status_code == 503
    assert scripted.get_json()["message"].startswith("Our system is short of storage space")

    app.request_class = Request  # space again: the draft goes on as it was
    for stream in opened:
        with contextlib.suppress(OSError):  # its buffer cannot be written out either
            stream.close()
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 0
    assert not any(upload_dir.rglob("*")) if upload_dir.exists() else True
    assert send_request(client).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == 1


def test_other_operating_system_errors_stay_unexpected_errors(app: Flask) -> None:
    """Only a full disk is answered as one: any other OSError is still the 500 page."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    @app.get("/test-broken")
    def _broken() -> str:
        raise FileNotFoundError("a file that should be there")

    response = app.test_client().get("/test-broken")
    assert response.status_code == 500
    assert "Something went wrong" in response.get_data(as_text=True)


@pytest.fixture
def draft_save_fails(app: Flask) -> Iterator[Callable[..., None]]:
    """Once called, the next write of a draft's answers (or the next statement starting with
    the ``statement`` given) meets a real failure of the real database: PostgreSQL ends the
    connection under it (``pg_terminate_backend``, as in a restart or a failover); SQLite
    refuses to write (``PRAGMA query_only``: "attempt to write a readonly database", as when
    its disk went read-only). The SQLite connection can write again from its next statement
    on, as a disk back in order."""
    from sqlalchemy import event, text

    with app.app_context():
        engine = db.engine
    state: dict[str, Any] = {"armed": "", "read_only": None}

    def before_execute(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        raw = cursor.connection
        if state["read_only"] is raw:
            raw.execute("PRAGMA query_only = OFF")
            state["read_only"] = None
        if not (state["armed"] and statement.lstrip().startswith(state["armed"])):
            return
        state["armed"] = ""
        if engine.dialect.name == "sqlite":
            raw.execute("PRAGMA query_only = ON")
            state["read_only"] = raw
        else:
            with engine.connect() as other:  # waits (up to 5 s) until the server ended it
                ended = other.execute(
                    text("SELECT pg_terminate_backend(:pid, 5000)"),
                    {"pid": raw.info.backend_pid},
                ).scalar()
            assert ended

    event.listen(engine, "before_cursor_execute", before_execute)
    yield lambda statement="UPDATE request_draft ": state.update(armed=statement)
    event.remove(engine, "before_cursor_execute", before_execute)


def _about_you_saved(client: FlaskClient) -> None:
    """A draft with the red-flag step and "about you" saved, as a patient leaves them."""
    from tests.support import answer_red_flags, open_step, page_proof, page_token, step_answers

    assert answer_red_flags(client).status_code == 303
    shown = open_step(client, "about")
    typed = step_answers("about") | {"full_name": "Zoë Navarro", "phone": "+34 612 345 678"}
    data = {**typed, "csrf_token": page_token(shown), **page_proof(shown), "nav": "next"}
    assert client.post("/request/steps/about", data=data).status_code == 303


def _stored_answers(app: Flask) -> tuple[dict[str, list[str]], str]:
    from sqlalchemy import select

    from booking.requests.drafts import RequestDraft

    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        return draft.values(), draft.step


def test_a_step_the_database_failed_to_save_comes_back_with_what_was_typed(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[[], None]
) -> None:
    """The database failed while a step's answers were saved: the patient had the bare 503
    page, and what they typed on the step was gone (every page is no-store, and Back shows
    the draft as stored). Now the same step comes back with it, saying it may not be saved
    yet; nothing of it is half stored, and pressing the button again saves it."""
    from tests.support import answer_red_flags, open_step, page_proof, page_token, step_answers

    assert answer_red_flags(client).status_code == 303
    typed = step_answers("about") | {
        "full_name": "Zoë O'Connor-Navarro",
        "email": "zoe.oconnor@example.org",
        "phone": "+34 612 345 678",
    }
    shown = open_step(client, "about")
    before = _stored_answers(app)
    draft_save_fails()
    failed = client.post(
        "/request/steps/about",
        data={**typed, "csrf_token": page_token(shown), **page_proof(shown), "nav": "next"},
    )
    assert failed.status_code == 503
    page = failed.get_data(as_text=True)
    assert "your answers on this page may not be saved yet" in page
    assert 'id="step-form"' in page  # the step itself, not the error page
    for value in ("Zoë O&#39;Connor-Navarro", "zoe.oconnor@example.org", "+34 612 345 678"):
        assert f'value="{value}"' in page, value
    assert _stored_answers(app) == before  # nothing half stored

    again = client.post(
        "/request/steps/about",
        data={**typed, "csrf_token": page_token(page), **page_proof(page), "nav": "next"},
    )
    assert again.status_code == 303
    assert again.headers["Location"].endswith("/request/steps/symptoms")
    answers, step = _stored_answers(app)
    assert answers["full_name"] == ["Zoë O'Connor-Navarro"]
    assert answers["phone"] == ["+34 612 345 678"]
    assert step == "symptoms"


def test_a_step_whose_save_lost_the_databases_answer_comes_back_and_sends_again(
    app: Flask, client: FlaskClient, lost_commit_answer: Callable[[], None]
) -> None:
    """The save's commit was made, then its answer lost (the connection cut on the way back):
    the app cannot know it was stored, so the step comes back as above; sent again, the same
    answers are saved once more and the patient goes on."""
    from tests.support import answer_red_flags, open_step, page_proof, page_token, step_answers

    assert answer_red_flags(client).status_code == 303
    typed = step_answers("about") | {"full_name": "Zoë O'Connor-Navarro"}
    shown = open_step(client, "about")
    lost_commit_answer()
    data = {**typed, "csrf_token": page_token(shown), **page_proof(shown), "nav": "next"}
    failed = client.post("/request/steps/about", data=data)
    assert failed.status_code == 503
    page = failed.get_data(as_text=True)
    assert "may not be saved yet" in page
    assert 'value="Zoë O&#39;Connor-Navarro"' in page
    assert _stored_answers(app)[0]["full_name"] == ["Zoë O'Connor-Navarro"]  # it was stored

    data |= {"csrf_token": page_token(page), **page_proof(page)}
    again = client.post("/request/steps/about", data=data)
    assert again.status_code == 303
    assert again.headers["Location"].endswith("/request/steps/symptoms")


def test_the_documents_step_the_database_failed_to_save_keeps_what_was_typed(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[[], None]
) -> None:
    """On the documents step the database failed as what a listed file is was saved: nothing
    of the post is done (the file chosen is not added), and the page comes back with what was
    typed (next to the listed file, and for the file chosen), naming the file to choose
    again (a browser never fills a file box in again)."""
    from sqlalchemy import select

    from booking.requests.drafts import RequestDraft
    from tests.support import fill_every_step, open_step, page_proof, page_token, pdf_bytes

    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    with app.app_context():
        [listed] = db.session.scalars(select(RequestDraft)).one().documents
        box = f"description-{listed.id}"
    shown = open_step(client, "documents")

    def post(page: str) -> Any:
        data = {
            box: "MRI of the lower back, March",
            "files": [(io.BytesIO(pdf_bytes("CT report")), "ct.pdf")],
            "description": "CT of the neck, 2025",
            "nav": "upload",
            "csrf_token": page_token(page),
            **page_proof(page),
        }
        return client.post(
            "/request/steps/documents", data=data, content_type="multipart/form-data"
        )

    draft_save_fails()
    failed = post(shown)
    assert failed.status_code == 503
    page = failed.get_data(as_text=True)
    assert "your answers on this page may not be saved yet" in page
    assert "<strong><bdi>ct.pdf</bdi></strong>: Not added: our system had a problem." in page
    assert f'name="{box}" form="upload-form" maxlength="200" value="MRI of the lower back' in page
    assert 'value="CT of the neck, 2025"' in page
    with app.app_context():
        documents = db.session.scalars(select(RequestDraft)).one().documents
        assert [(d.original_name, d.description) for d in documents] == [("mri.pdf", None)]

    assert post(page).status_code == 303  # the same again, once the database is back
    with app.app_context():
        documents = db.session.scalars(select(RequestDraft)).one().documents
        assert [(d.original_name, d.description) for d in documents] == [
            ("mri.pdf", "MRI of the lower back, March"),
            ("ct.pdf", "CT of the neck, 2025"),
        ]


def test_a_file_the_database_failed_to_add_is_named_and_its_description_kept(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[[], None]
) -> None:
    """The database failed as a chosen file was added to the draft: the file is named with
    what happened (found not stored: to choose again; see the tests below for a row stored
    after all, or no one able to say), the files after it are not tried and are named to
    choose again, and what they are is kept; with scripts the message goes beside the file.
    Not the bare 503 page."""
    from sqlalchemy import func, select

    from booking.requests.drafts import DraftDocument
    from tests.support import fill_every_step, page_proof, page_token, pdf_bytes, upload

    fill_every_step(client)
    draft_save_fails()
    response = upload(
        client,
        (pdf_bytes("MRI report"), "mri.pdf"),
        (pdf_bytes("CT report"), "ct.pdf"),
        description="Scans from the hospital",
    )
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    for name in ("mri.pdf", "ct.pdf"):
        assert f"<strong><bdi>{name}</bdi></strong>: Not added: our system had a problem." in page
    assert 'value="Scans from the hospital"' in page
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(DraftDocument)) == 0

    draft_save_fails()
    scripted = client.post(
        "/request/steps/documents",
        data={
            "files": [(io.BytesIO(pdf_bytes("MRI report")), "mri.pdf")],
            "csrf_token": page_token(page),
            **page_proof(page),
        },
        headers={"Accept": "application/json"},
        content_type="multipart/form-data",
    )
    assert scripted.status_code == 503
    assert scripted.get_json()["message"] == (
        "Not added: our system had a problem. Please choose it again in a few minutes."
    )


@contextlib.contextmanager
def _database_down(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """The same app (its keys, so this browser's session reads the same), its database down:
    SQLite's file in a folder that is not there, PostgreSQL with nothing listening (port 1);
    its engine disposed of at the end."""
    with app.app_context():
        sqlite = db.engine.dialect.name == "sqlite"
    down = (
        f"sqlite:///{tmp_path / 'gone' / 'db.sqlite3'}"
        if sqlite
        else "postgresql+psycopg://postgres@127.0.0.1:1/test"
    )
    settings = {
        key: app.config[key]
        for key in ("UPLOAD_DIR", "DEV_MAILDIR", "STAFF_NOTIFICATION_EMAIL", "CLINIC_NAME")
    }
    gone = create_app(settings | {"SQLALCHEMY_DATABASE_URI": down})
    try:
        yield gone
    finally:
        with gone.app_context():
            db.engine.dispose()


def _same_browser(app: Flask, client: FlaskClient, other: Flask) -> FlaskClient:
    """A client of ``other`` holding ``client``'s session cookie: the same browser."""
    name = app.config["SESSION_COOKIE_NAME"]
    cookie = client.get_cookie(name)
    assert cookie is not None
    browser = other.test_client()
    browser.set_cookie(name, cookie.value, domain=cookie.domain, path=cookie.path)
    return browser


def _ticked(page: str, name: str, value: str) -> bool:
    import re

    tag = re.search(rf'<input[^>]*name="{name}"[^>]*value="{value}"[^>]*>', page)
    return tag is not None and "checked" in tag.group(0)


def test_the_database_down_an_emergency_answer_still_gets_the_emergency_page(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """The database went down while a patient was part-way through a request: the first step
    and its emergency "yes" gave the generic 503 page (read as it is, it says to call or seek
    care, but not the emergency wording, the numbers or the call-back). Now the questions
    show (blank: the draft's answers cannot be read, nor whether it is hidden), an emergency
    answer leads to the emergency page (the session keeps the answers), which shows its
    advice with no details of the draft; other answers come back ticked, not saved yet."""
    from tests.support import page_token, red_flag_answers

    _about_you_saved(client)

    with _database_down(app, tmp_path) as down:
        browser = _same_browser(app, client, down)
        start = browser.get("/request/start")
        assert start.status_code == 503
        page = start.get_data(as_text=True)
        assert not _ticked(page, "red_fever", "no")  # blank: the draft was not read
        assert "we cannot show the answers you saved just now. Nothing you saved is lost" in page

        answers = red_flag_answers(["bladder_bowel"])
        sent = browser.post("/request/start", data={**answers, "csrf_token": page_token(page)})
        assert sent.status_code == 303
        assert sent.headers["Location"].endswith("/request/emergency")
        shown_emergency = browser.get("/request/emergency")
        assert shown_emergency.status_code == 200
        advice = shown_emergency.get_data(as_text=True)
        assert "Please get emergency care now" in advice
        with down.test_request_context():
            from booking.requests.triage import emergency_context

            call = emergency_context()["emergency_call"]
        assert call.split(".")[0] in advice
        assert 'name="full_name"' in advice and "Zoë" not in advice  # nothing of the draft

        urgent = red_flag_answers(["fever"])
        again = browser.post("/request/start", data={**urgent, "csrf_token": page_token(page)})
        assert again.status_code == 503
        refused = again.get_data(as_text=True)
        assert "your answers may not be saved yet. They are still ticked below" in refused
        assert _ticked(refused, "red_fever", "yes") and _ticked(refused, "red_both_legs", "no")


def test_the_first_step_the_database_failed_to_save_comes_back_ticked(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[..., None]
) -> None:
    """The database failed as the first step started the draft: an emergency answer had the
    generic 503 page instead of the emergency one, and other answers were lost. Now the
    emergency answer leads to the emergency page all the same, and an urgent one brings the
    step back with the answers ticked, not saved yet; pressing again saves them and goes on."""
    from sqlalchemy import func, select

    from booking.requests.drafts import RequestDraft
    from tests.support import page_token, red_flag_answers

    page = client.get("/request/start").get_data(as_text=True)
    draft_save_fails("INSERT INTO request_draft ")
    sent = client.post(
        "/request/start",
        data={**red_flag_answers(["saddle_numbness"]), "csrf_token": page_token(page)},
    )
    assert sent.status_code == 303
    assert sent.headers["Location"].endswith("/request/emergency")
    advice = client.get("/request/emergency")
    assert advice.status_code == 200
    assert "Please get emergency care now" in advice.get_data(as_text=True)

    fresh = app.test_client()
    page = fresh.get("/request/start").get_data(as_text=True)
    answers = red_flag_answers(["fever"])
    draft_save_fails("INSERT INTO request_draft ")
    failed = fresh.post("/request/start", data={**answers, "csrf_token": page_token(page)})
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "your answers may not be saved yet. They are still ticked below" in shown
    assert 'action="/request/start"' in shown  # the step itself, not the error page
    assert _ticked(shown, "red_fever", "yes") and _ticked(shown, "red_bladder_bowel", "no")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(RequestDraft)) == 0

    again = fresh.post("/request/start", data={**answers, "csrf_token": page_token(shown)})
    assert again.status_code == 303
    assert "/request/emergency" not in again.headers["Location"]
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        assert draft.values()["red_fever"] == ["yes"]


def test_the_first_step_whose_update_failed_comes_back_ticked(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[..., None]
) -> None:
    """The same when the browser's draft was there and the database failed as its answers
    were updated: the step again, ticked, the draft as it was."""
    from tests.support import answer_red_flags, page_proof, page_token, red_flag_answers

    assert answer_red_flags(client).status_code == 303
    before = _stored_answers(app)
    page = client.get("/request/start").get_data(as_text=True)
    answers = red_flag_answers(["iv_drug_use"])
    draft_save_fails()
    failed = client.post(
        "/request/start", data={**answers, "csrf_token": page_token(page), **page_proof(page)}
    )
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "your answers may not be saved yet" in shown
    assert _ticked(shown, "red_iv_drug_use", "yes")
    assert _stored_answers(app) == before


def _call_back(client: FlaskClient, page: str) -> Any:
    from tests.support import hidden_value, page_token

    data = {
        "csrf_token": page_token(page),
        "submission_token": hidden_value(page, "submission_token"),
        "full_name": "Jonas Weber",
        "phone": "030 901820",
    }
    return client.post("/request/emergency", data=data)


def _not_sent_page(response: Any) -> str:
    """The emergency page again (503): its advice first, then that the call-back may not
    have been sent, with what was typed."""
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    advice = page.index("Please get emergency care now</h1>")
    not_sent = page.index("Your call-back request may not have been sent")
    assert advice < not_sent
    assert "Do not wait for our call: please get emergency care now." in page
    assert 'value="Jonas Weber"' in page and 'value="030 901820"' in page
    return page


def test_the_database_down_the_call_back_form_says_it_may_not_be_sent(
    app: Flask, tmp_path: Path
) -> None:
    """The database down altogether: the emergency page's call-back form gave the generic
    503 page. Now it is the emergency page again, its advice first, saying the call-back
    may not have been sent, with what was typed."""
    from tests.support import page_token, red_flag_answers

    with _database_down(app, tmp_path) as down:
        browser = down.test_client()
        page = browser.get("/request/start").get_data(as_text=True)
        answers = red_flag_answers(["both_legs"])
        browser.post("/request/start", data={**answers, "csrf_token": page_token(page)})
        page = browser.get("/request/emergency").get_data(as_text=True)
        _not_sent_page(_call_back(browser, page))


def test_a_call_back_the_database_failed_to_store_says_so_and_sends_once_again(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[..., None]
) -> None:
    """The database failed as the call-back request was stored: the emergency page again,
    saying so; pressing again once it is back stores one request and confirms it."""
    from sqlalchemy import func, select

    from booking.requests.models import ConsultationRequest
    from tests.support import answer_red_flags

    assert answer_red_flags(client, yes={"urinary_retention"}).status_code == 303
    page = client.get("/request/emergency").get_data(as_text=True)
    draft_save_fails("INSERT INTO patient ")
    page = _not_sent_page(_call_back(client, page))
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == 0

    again = _call_back(client, page)
    assert again.status_code == 303
    assert again.headers["Location"] == "/request/emergency/call-back"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == 1


def test_a_call_back_whose_answer_was_lost_is_not_stored_twice(
    app: Flask, client: FlaskClient, lost_commit_answer: Callable[[], None]
) -> None:
    """The call-back's commit was made, then its answer lost: the page cannot know it was
    sent, so it says it may not have been; pressing again stores nothing twice. The clinic's
    alert, stored with it but never handed to the queue (the commit "failed"), goes to the
    queue then: it waited minutes for the sweep."""
    from sqlalchemy import func, select

    from booking.notifications.models import OutboxEmail
    from booking.requests.models import ConsultationRequest
    from tests.support import answer_red_flags, run_queued_tasks

    assert answer_red_flags(client, yes={"clumsy_hands"}).status_code == 303
    page = client.get("/request/emergency").get_data(as_text=True)
    lost_commit_answer()
    page = _not_sent_page(_call_back(client, page))
    huey = app.extensions["huey"]
    assert huey.pending_count() == 0  # the alert is stored, not handed to the queue
    assert _call_back(client, page).headers["Location"] == "/request/emergency/call-back"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(ConsultationRequest)) == 1
    assert run_queued_tasks(app) >= 1
    with app.app_context():  # tried at once (no mail server here: it is tried again later)
        alerts = db.session.scalars(select(OutboxEmail)).all()
        assert alerts and all(alert.attempts == 1 for alert in alerts)


def test_the_first_step_shown_again_reads_nothing_more_from_a_database_still_down(
    app: Flask, client: FlaskClient
) -> None:
    """PostgreSQL down from the draft's update on (every statement after it fails too): the
    step comes back ticked, built from the draft as it was read before the save (the failed
    save rolled back and expired it: read again, it fails, and the page was the bare 503).
    (SQLite's read-only disk still answers reads: nothing to show there.)"""
    import sqlalchemy as sa
    from sqlalchemy import event

    from tests.support import answer_red_flags, page_proof, page_token, red_flag_answers

    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL only: a connection it ends")
    assert answer_red_flags(client).status_code == 303
    page = client.get("/request/start").get_data(as_text=True)
    terminator = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    down = {"from": "UPDATE request_draft ", "now": False}

    def before_execute(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        down["now"] = down["now"] or statement.lstrip().startswith(down["from"])
        if down["now"]:
            with terminator.connect() as other:
                ended = other.execute(
                    sa.text("SELECT pg_terminate_backend(:pid, 5000)"),
                    {"pid": cursor.connection.info.backend_pid},
                ).scalar()
            assert ended

    event.listen(engine, "before_cursor_execute", before_execute)
    try:
        answers = red_flag_answers(["weak_immunity"])
        failed = client.post(
            "/request/start", data={**answers, "csrf_token": page_token(page), **page_proof(page)}
        )
    finally:
        event.remove(engine, "before_cursor_execute", before_execute)
        terminator.dispose()
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "your answers may not be saved yet" in shown
    assert _ticked(shown, "red_weak_immunity", "yes")
    assert page_proof(shown)  # still the draft's page


@pytest.fixture
def lose_answer_after(app: Flask, lost_commit_answer: Callable[[], None]) -> Iterator[Any]:
    """Once called with the start of a statement, the commit of the transaction that runs it
    is made, then its answer is lost (``lost_commit_answer``): the commits before it (a
    step's answers saved before its request is sent) go through."""
    from sqlalchemy import event

    with app.app_context():
        engine = db.engine
    armed = {"at": ""}

    def before_execute(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if armed["at"] and statement.lstrip().startswith(armed["at"]):
            armed["at"] = ""
            lost_commit_answer()

    event.listen(engine, "before_cursor_execute", before_execute)
    yield lambda statement: armed.update(at=statement)
    event.remove(engine, "before_cursor_execute", before_execute)


def _requests_stored(app: Flask) -> int:
    from sqlalchemy import func, select

    from booking.requests.models import ConsultationRequest

    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(ConsultationRequest))


def _checked(page: str, name: str) -> bool:
    import re

    tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    return tag is not None and "checked" in tag.group(0)


def _send(client: FlaskClient, page: str) -> Any:
    from tests.support import page_proof, page_token, step_answers

    data = {**step_answers("review"), "nav": "send", "csrf_token": page_token(page)}
    return client.post("/request/steps/review", data={**data, **page_proof(page)})


def test_a_send_the_database_failed_to_store_comes_back_to_the_review(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[..., None]
) -> None:
    """The database failed as the request was stored: the patient had the bare 503 page after
    the last step. Now the review comes back, saying the request may not be sent, its answers
    kept; pressing Send again stores it once."""
    from tests.support import fill_every_step, open_step

    fill_every_step(client)
    page = open_step(client, "review")
    draft_save_fails("INSERT INTO patient ")
    failed = _send(client, page)
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "your request may not be sent yet. Your answers are saved" in shown
    assert 'id="step-form"' in shown and "Send my request" in shown
    assert _checked(shown, "privacy_consent")  # as the patient ticked it
    assert _requests_stored(app) == 0

    again = _send(client, shown)
    assert again.status_code == 303
    assert again.headers["Location"] == "/request/submitted"
    assert _requests_stored(app) == 1
    assert "Your reference" in client.get("/request/submitted").get_data(as_text=True)


def test_a_send_whose_answer_was_lost_shows_the_request_and_sends_no_twin(
    app: Flask, client: FlaskClient, lose_answer_after: Callable[[str], None]
) -> None:
    """The request's commit was made, then its answer lost: the bare 503 page. Now the
    request stored is found and confirmed as it would have been, and its emails (the
    clinic's alert among them) handed to the queue, not left minutes for the sweep;
    pressing Send again (Back, or the page resent) shows that request, never a second one."""
    from tests.support import fill_every_step, open_step

    fill_every_step(client)
    page = open_step(client, "review")
    huey = app.extensions["huey"]
    huey.flush()
    lose_answer_after("INSERT INTO consultation_request ")
    sent = _send(client, page)
    assert sent.status_code == 303
    assert sent.headers["Location"] == "/request/submitted"
    assert _requests_stored(app) == 1
    assert huey.pending_count() >= 2  # the patient's receipt and the clinic's alert
    confirmation = client.get("/request/submitted").get_data(as_text=True)
    assert "Your reference" in confirmation

    again = _send(client, page)
    assert again.status_code == 303
    assert again.headers["Location"] == "/request/submitted"
    assert _requests_stored(app) == 1


def _draft_documents(app: Flask) -> list[str]:
    from sqlalchemy import select

    from booking.requests.drafts import DraftDocument

    with app.app_context():
        return list(db.session.scalars(select(DraftDocument.original_name)))


def _remove(client: FlaskClient, page: str, typed: str) -> Any:
    import re

    from tests.support import page_proof, page_token

    document_id = re.search(r'name="remove" value="(\d+)"', page).group(1)
    data = {
        "remove": document_id,
        f"description-{document_id}": typed,
        "csrf_token": page_token(page),
        **page_proof(page),
    }
    return client.post("/request/steps/documents", data=data)


def test_a_remove_the_database_failed_to_store_comes_back_to_the_step(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[..., None]
) -> None:
    """The database failed as a file was taken off the draft: the bare 503 page. Now the
    documents step comes back, the file still listed with what was typed next to it, saying
    to press Remove again; pressed again, it is removed."""
    from tests.support import fill_every_step, open_step, pdf_bytes

    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    page = open_step(client, "documents")
    draft_save_fails("DELETE FROM draft_document ")
    failed = _remove(client, page, "Wrong file")
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "we cannot confirm that the file was removed. If it is still in the list" in shown
    assert "<strong><bdi>mri.pdf</bdi></strong>" in shown and 'value="Wrong file"' in shown
    assert _draft_documents(app) == ["mri.pdf"]

    again = _remove(client, shown, "Wrong file")
    assert again.status_code == 303
    assert _draft_documents(app) == []


def test_a_remove_whose_answer_was_lost_is_not_listed_and_pressing_again_is_harmless(
    app: Flask, client: FlaskClient, lose_answer_after: Callable[[str], None]
) -> None:
    from tests.support import fill_every_step, open_step, pdf_bytes

    fill_every_step(client, files=((pdf_bytes(), "mri.pdf"),))
    page = open_step(client, "documents")
    lose_answer_after("DELETE FROM draft_document ")
    failed = _remove(client, page, "")
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "we cannot confirm that the file was removed" in shown
    assert "<strong><bdi>mri.pdf</bdi></strong>" not in shown  # the database holds it no more
    assert _draft_documents(app) == []
    assert _remove(client, page, "").status_code == 303  # from the page before: nothing there
    assert "mri.pdf" not in open_step(client, "documents")


def _add_file(client: FlaskClient, page: str) -> Any:
    """Add a file on the documents step shown (``page``), as its form does without scripts."""
    from tests.support import file_part, page_proof, page_token, pdf_bytes

    data = {
        "csrf_token": page_token(page),
        "nav": "upload",
        **page_proof(page),
        "files": [file_part((pdf_bytes("MRI"), "mri.pdf"))],
    }
    return client.post("/request/steps/documents", data=data, content_type="multipart/form-data")


def test_a_file_the_database_failed_to_add_to_the_draft_is_said_not_added_and_not_kept(
    app: Flask, client: FlaskClient, upload_dir: Path, draft_save_fails: Callable[..., None]
) -> None:
    """The database failed as a file was added to the draft: the step said it could not
    confirm the file was added, and the file stayed in the upload folder for the nightly
    reconciliation. Asked again, the database says no row names it: the file is deleted and
    the step says it was not added, to choose again; chosen again, it is added."""
    from tests.support import fill_every_step, open_step, stored_files

    fill_every_step(client)
    page = open_step(client, "documents")
    draft_save_fails("INSERT INTO draft_document ")
    failed = _add_file(client, page)
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "Not added: our system had a problem. Please choose it again in a few minutes." in (
        shown
    )
    assert "we cannot confirm that this file was added" not in shown
    assert _draft_documents(app) == []
    assert stored_files(upload_dir) == []

    assert _add_file(client, page).status_code == 303  # chosen again
    assert _draft_documents(app) == ["mri.pdf"]
    assert len(stored_files(upload_dir)) == 1


def test_a_file_added_to_the_draft_whose_answer_was_lost_is_added(
    app: Flask, client: FlaskClient, upload_dir: Path, lose_answer_after: Callable[[str], None]
) -> None:
    """The file's row was committed, then the answer lost: found stored after all, the file
    is added as it would have been (no "cannot confirm"), and its file kept."""
    from tests.support import fill_every_step, open_step, stored_files

    fill_every_step(client)
    page = open_step(client, "documents")
    lose_answer_after("INSERT INTO draft_document ")
    added = _add_file(client, page)
    assert added.status_code == 303
    assert _draft_documents(app) == ["mri.pdf"]
    assert len(stored_files(upload_dir)) == 1
    assert "cannot confirm" not in open_step(client, "documents")


def test_a_file_the_database_cannot_say_it_added_to_the_draft_is_kept_and_said_so(
    app: Flask,
    client: FlaskClient,
    upload_dir: Path,
    draft_save_fails: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The database failed and cannot be asked whether the row was stored after all (still
    failing): the file stays for the reconciliation, and the step says it cannot confirm."""
    from sqlalchemy.exc import OperationalError

    from tests.support import fill_every_step, open_step, stored_files

    def still_failing(_names: list[str]) -> bool:
        raise OperationalError("select", {}, Exception("the database system is shutting down"))

    monkeypatch.setattr("booking.requests.files.named_by_rows", still_failing)
    fill_every_step(client)
    page = open_step(client, "documents")
    draft_save_fails("INSERT INTO draft_document ")
    failed = _add_file(client, page)
    assert failed.status_code == 503
    assert "we cannot confirm that this file was added" in failed.get_data(as_text=True)
    assert _draft_documents(app) == []
    assert len(stored_files(upload_dir)) == 1


def test_the_documents_step_whose_next_the_database_failed_to_store_comes_back(
    app: Flask, client: FlaskClient, draft_save_fails: Callable[..., None]
) -> None:
    """The database failed as the documents step went on to the review (the furthest step
    reached saved): the bare 503 page. Now the step again, its files listed, saying to press
    again; pressed again, the review opens."""
    from tests.support import (
        REQUEST_STEPS,
        answer_red_flags,
        open_step,
        page_proof,
        page_token,
        pdf_bytes,
        post_step,
        upload,
    )

    assert answer_red_flags(client).status_code == 303
    for code in REQUEST_STEPS:
        assert post_step(client, code).status_code == 303
    assert upload(client, (pdf_bytes(), "mri.pdf")).status_code == 303
    before = _stored_answers(app)
    page = open_step(client, "documents")
    draft_save_fails()
    data = {"nav": "next", "csrf_token": page_token(page), **page_proof(page)}
    failed = client.post("/request/steps/documents", data=data)
    assert failed.status_code == 503
    shown = failed.get_data(as_text=True)
    assert "we could not go on to the next step. The documents listed below are kept" in shown
    assert "<strong><bdi>mri.pdf</bdi></strong>" in shown
    assert _stored_answers(app) == before  # still at the documents step

    data |= {"csrf_token": page_token(shown), **page_proof(shown)}
    again = client.post("/request/steps/documents", data=data)
    assert again.status_code == 303
    assert again.headers["Location"] == "/request/steps/review"
    assert _stored_answers(app)[1] == "review"


def test_the_call_back_confirmation_with_the_database_down_says_it_was_received(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """The call-back was stored, then the database went down as its confirmation was read:
    the bare 503 page, read as "maybe not sent" by a patient with emergency symptoms. Now
    the advice first, then that the call-back was received (no details: none can be read)."""
    from tests.support import answer_red_flags

    assert answer_red_flags(client, yes={"urinary_retention"}).status_code == 303
    page = client.get("/request/emergency").get_data(as_text=True)
    sent = _call_back(client, page)
    assert sent.headers["Location"] == "/request/emergency/call-back"

    with _database_down(app, tmp_path) as down:
        shown = _same_browser(app, client, down).get("/request/emergency/call-back")
        assert shown.status_code == 503
        confirmation = shown.get_data(as_text=True)
        advice = confirmation.index("Please get emergency care now</h1>")
        received = confirmation.index("We received your call-back request.")
        assert advice < received
        assert "You do not need to send it again." in confirmation
        assert "Jonas" not in confirmation and "030 901820" not in confirmation


def test_the_first_step_whose_draft_cannot_be_read_overwrites_nothing(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """The first step opened while the draft could not be read showed its questions blank,
    as a fresh start. It says now that the saved answers could not be read; sent while they
    still cannot be, it saves nothing; sent once they can, it saves this step's answers as
    ticked, and every later step's answers are kept."""
    from tests.support import page_token, red_flag_answers

    _about_you_saved(client)
    before = _stored_answers(app)

    with _database_down(app, tmp_path) as down:
        browser = _same_browser(app, client, down)
        start = browser.get("/request/start")
        assert start.status_code == 503
        page = start.get_data(as_text=True)
        assert "we cannot show the answers you saved just now" in page
        assert "Zoë" not in page
        answers = red_flag_answers(["fever"])
        sent = browser.post("/request/start", data={**answers, "csrf_token": page_token(page)})
        assert sent.status_code == 503
        assert "your answers may not be saved yet" in sent.get_data(as_text=True)
        assert _stored_answers(app) == before  # nothing saved

        back = _same_browser(down, browser, app)  # the database is back
    again = back.post("/request/start", data={**answers, "csrf_token": page_token(page)})
    assert again.status_code == 303
    stored, _step = _stored_answers(app)
    assert stored["red_fever"] == ["yes"]
    assert stored["full_name"] == ["Zoë Navarro"] and stored["phone"] == ["+34 612 345 678"]
    assert {k: v for k, v in stored.items() if not k.startswith("red_")} == {
        k: v for k, v in before[0].items() if not k.startswith("red_")
    }


def test_the_confirmation_with_the_database_down_says_the_request_was_sent(
    app: Flask, client: FlaskClient, tmp_path: Path
) -> None:
    """The request was stored, then the database went down as its confirmation was read:
    the bare 503 page, read as "try again". Now it says the request was sent, and not to
    send it again (none of its details: none can be read)."""
    from tests.support import fill_every_step, open_step

    fill_every_step(client)
    sent = _send(client, open_step(client, "review"))
    assert sent.headers["Location"] == "/request/submitted"

    with _database_down(app, tmp_path) as down:
        shown = _same_browser(app, client, down).get("/request/submitted")
        assert shown.status_code == 503
        page = shown.get_data(as_text=True)
        assert "Your request was sent" in page
        assert "You do not need to send it again." in page
        assert "Please reload this page in a few minutes to see your reference." in page
