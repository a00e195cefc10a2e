"""Documents and two-factor secrets encrypted at rest: what is on disk, what is read back,
tampering and lost keys detected and reported clearly, and key rotation."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import pyotp
import pytest
from flask import Flask
from sqlalchemy import select, text, update

from booking import create_app
from booking.crypto import KeyMissingError, KeyRing, new_key, parse_key
from booking.documents.models import Document
from booking.documents.storage import (
    CHUNK_SIZE,
    HEADER_BYTES,
    TAG_BYTES,
    DocumentStorage,
    DocumentUnreadable,
    get_storage,
)
from booking.extensions import db
from booking.requests.events import RequestEvent
from booking.requests.models import MedicalHistory
from booking.staff.models import StaffUser
from tests.factories import make_request, make_staff
from tests.support import CSRF_RE, AuthActions, answer_red_flags, pdf_bytes, reach

KEY_A, KEY_B, KEY_C = (parse_key(new_key()) for _ in range(3))
PDF_HEAD = b"%PDF-1.4\n"
PDF_TAIL = b"%%EOF\n"


def pdf_of(size: int) -> bytes:
    """A byte string ``size`` long (at least 15) that the content check takes for a PDF: its
    header, random bytes, and the end-of-file marker."""
    return PDF_HEAD + os.urandom(size - len(PDF_HEAD) - len(PDF_TAIL)) + PDF_TAIL


def store(storage: DocumentStorage, content: bytes) -> str:
    return storage.save(io.BytesIO(content), max_bytes=50 * 1024 * 1024).stored_name


# --- the file format ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [15, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE, 200_000]
)
def test_round_trip_at_chunk_boundaries(tmp_path: Path, size: int) -> None:
    storage = DocumentStorage(tmp_path, KeyRing(KEY_A))
    content = pdf_of(size)
    saved = storage.save(io.BytesIO(content), max_bytes=10 * 1024 * 1024)
    on_disk = (tmp_path / saved.stored_name).read_bytes()
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(on_disk) == HEADER_BYTES + size + chunks * TAG_BYTES
    assert content[:64] not in on_disk
    assert saved.sha256 == hashlib.sha256(content).hexdigest()
    assert saved.size_bytes == size
    with storage.open(saved.stored_name, saved.sha256) as plain:
        assert plain.read() == content


def test_the_same_document_never_encrypts_the_same_way_twice(tmp_path: Path) -> None:
    storage = DocumentStorage(tmp_path, KeyRing(KEY_A))
    content = pdf_of(1000)
    first, second = store(storage, content), store(storage, content)
    assert (tmp_path / first).read_bytes() != (tmp_path / second).read_bytes()


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage",
    ["flip_first_chunk", "flip_last_chunk", "flip_header", "truncate_chunk", "drop_last_chunk"],
)
def test_any_damage_is_detected_not_returned(tmp_path: Path, damage: str) -> None:
    storage = DocumentStorage(tmp_path, KeyRing(KEY_A))
    content = pdf_of(2 * CHUNK_SIZE + 100)
    saved = storage.save(io.BytesIO(content), max_bytes=10 * 1024 * 1024)
    path = tmp_path / saved.stored_name
    data = path.read_bytes()
    if damage == "flip_first_chunk":
        _flip(path, HEADER_BYTES + 10)
    elif damage == "flip_last_chunk":
        _flip(path, len(data) - 5)
    elif damage == "flip_header":
        _flip(path, HEADER_BYTES - 1)  # the nonce prefix
    elif damage == "truncate_chunk":
        path.write_bytes(data[:-50])
    else:  # a whole final chunk removed: what remains ends on a chunk not sealed as last
        path.write_bytes(data[: HEADER_BYTES + 2 * (CHUNK_SIZE + TAG_BYTES)])
    with pytest.raises(DocumentUnreadable):
        storage.verify(saved.stored_name, saved.sha256)


def test_chunks_cannot_be_swapped_between_files(tmp_path: Path) -> None:
    storage = DocumentStorage(tmp_path, KeyRing(KEY_A))
    one = storage.save(io.BytesIO(pdf_of(CHUNK_SIZE + 10)), max_bytes=10**7)
    two = storage.save(io.BytesIO(pdf_of(CHUNK_SIZE + 10)), max_bytes=10**7)
    first, second = (tmp_path / one.stored_name), (tmp_path / two.stored_name)
    spliced = first.read_bytes()[: HEADER_BYTES + CHUNK_SIZE + TAG_BYTES]
    spliced += second.read_bytes()[HEADER_BYTES + CHUNK_SIZE + TAG_BYTES :]
    first.write_bytes(spliced)
    with pytest.raises(DocumentUnreadable):
        storage.verify(one.stored_name, one.sha256)


def test_a_checksum_that_does_not_match_is_refused(tmp_path: Path) -> None:
    storage = DocumentStorage(tmp_path, KeyRing(KEY_A))
    saved = storage.save(io.BytesIO(pdf_of(500)), max_bytes=10**6)
    with pytest.raises(DocumentUnreadable, match="checksum"):
        storage.verify(saved.stored_name, hashlib.sha256(b"something else").hexdigest())


def test_a_missing_key_is_named_not_mistaken_for_damage(tmp_path: Path) -> None:
    saved = DocumentStorage(tmp_path, KeyRing(KEY_A)).save(io.BytesIO(pdf_of(500)), 10**6)
    with pytest.raises(KeyMissingError) as raised:
        DocumentStorage(tmp_path, KeyRing(KEY_B)).open(saved.stored_name)
    assert raised.value.key_id == KeyRing(KEY_A).current.label
    assert "ENCRYPTION_OLD_KEYS" in str(raised.value)
    # With the old key configured beside the new one, it reads again.
    with DocumentStorage(tmp_path, KeyRing(KEY_B, [KEY_A])).open(saved.stored_name) as plain:
        assert plain.read(len(PDF_HEAD)) == PDF_HEAD


def test_a_20_mb_document_is_never_held_whole_in_memory(tmp_path: Path) -> None:
    size = 20 * 1024 * 1024
    source = tmp_path / "scan.pdf"
    with open(source, "wb") as out:
        out.write(PDF_HEAD)
        for _ in range(size // CHUNK_SIZE):
            out.write(os.urandom(CHUNK_SIZE))
        out.write(PDF_TAIL)
    storage = DocumentStorage(tmp_path / "store", KeyRing(KEY_A))
    tracemalloc.start()
    try:
        with open(source, "rb") as upload:
            saved = storage.save(upload, max_bytes=25 * 1024 * 1024)
        _, peak_write = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        storage.verify(saved.stored_name, saved.sha256)
        _, peak_read = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert saved.size_bytes == source.stat().st_size > size
    # A few chunks at a time, never the document: far below its 20 MB.
    assert peak_write < 1024 * 1024, peak_write
    assert peak_read < 1024 * 1024, peak_read


# --- settings ----------------------------------------------------------------------------


def test_the_app_refuses_to_start_without_a_key_and_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match=r"ENCRYPTION_KEY is not set.*flask keys new"):
        create_app({"ENCRYPTION_KEY": None, "UPLOAD_DIR": str(tmp_path)})
    with pytest.raises(ValueError, match="32 random bytes"):
        create_app({"ENCRYPTION_KEY": "too-short", "UPLOAD_DIR": str(tmp_path)})


# --- through the application -------------------------------------------------------------


def _use_keys(app: Flask, current: bytes, *old: bytes) -> None:
    """What restarting with new ENCRYPTION_KEY / ENCRYPTION_OLD_KEYS settings does."""
    app.extensions["spineconsult_keys"] = KeyRing(current, list(old))


def _one_document(app: Flask) -> tuple[str, int, str]:
    with app.app_context():
        consultation = make_request(documents=1)
        doc = consultation.documents[0]
        return consultation.reference, doc.id, doc.stored_name


def test_staff_get_a_clear_page_when_the_key_is_missing_or_the_file_damaged(
    app: Flask, upload_dir: Path
) -> None:
    reference, doc_id, stored_name = _one_document(app)
    with app.app_context():
        make_staff("coordinator", "coord@example.com")
    client = app.test_client()
    AuthActions(client).login(email="coord@example.com")
    url = f"/staff/requests/{reference}/documents/{doc_id}"
    assert client.get(url).status_code == 200

    original = app.extensions["spineconsult_keys"]
    _use_keys(app, KEY_C)
    page = client.get(url)
    assert page.status_code == 503
    body = page.get_data(as_text=True)
    assert "cannot be opened" in body and original.current.label in body
    assert "Traceback" not in body

    app.extensions["spineconsult_keys"] = original
    _flip(upload_dir / stored_name, HEADER_BYTES + 3)
    page = client.get(url)
    assert page.status_code == 409  # tests/test_damaged_document.py: the audit row and alert
    assert "damaged" in page.get_data(as_text=True)


def test_rotation_re_encrypts_documents_and_two_factor_secrets(
    app: Flask, upload_dir: Path
) -> None:
    runner = app.test_cli_runner()
    _use_keys(app, KEY_A)
    _, _, stored_name = _one_document(app)
    secret = pyotp.random_base32()
    with app.app_context():
        user = make_staff("admin", "admin@example.com")
        user.totp_secret = secret
        user.totp_enabled = True
        db.session.commit()
        raw = db.session.execute(text("SELECT totp_secret FROM staff_user")).scalar_one()
        assert raw.startswith("v1:") and secret not in raw
        plain = get_storage().open(stored_name).read()

    label_a, label_b = KeyRing(KEY_A).current.label, KeyRing(KEY_B).current.label
    _use_keys(app, KEY_B, KEY_A)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Documents re-encrypted: 1" in result.output
    assert "two-factor secrets re-encrypted: 1" in result.output
    assert (upload_dir / stored_name).read_bytes()[8:12].hex() == label_b
    assert not list(upload_dir.glob("*rotating"))

    again = runner.invoke(args=["keys", "rotate"])
    assert "Documents re-encrypted: 0; already under the current key: 1" in again.output
    assert "two-factor secrets re-encrypted: 0" in again.output

    # The old key can go: everything reads with the new one alone.
    _use_keys(app, KEY_B)
    assert runner.invoke(args=["keys", "check"]).exit_code == 0
    with app.app_context():
        doc = db.session.scalars(select(Document)).one()
        assert get_storage().open(stored_name, doc.sha256).read() == plain
        assert db.session.scalars(select(StaffUser)).one().totp_secret == secret
        raw = db.session.execute(text("SELECT totp_secret FROM staff_user")).scalar_one()
        assert raw.split(":")[1] == label_b

    # Without the key the documents were written with, `check` says which key is missing.
    _use_keys(app, KEY_A)
    lost = runner.invoke(args=["keys", "check"])
    assert lost.exit_code != 0
    assert f"need key id {label_b}, which is not configured" in lost.output
    assert label_a != label_b


def test_check_reads_every_encrypted_value_and_what_is_left_under_an_old_key(
    app: Flask,
) -> None:
    """`keys check` passing means the old key can go: a value written under it after the
    rotation (an app server not yet restarted with the new key) is reported, and so is one
    that does not decrypt; documents alone were checked before."""
    runner = app.test_cli_runner()
    _use_keys(app, KEY_A)
    with app.app_context():
        user = make_staff("admin", "admin@example.com")
        user.totp_secret = pyotp.random_base32()
        db.session.commit()
    _use_keys(app, KEY_B, KEY_A)
    assert runner.invoke(args=["keys", "rotate"]).exit_code == 0
    checked = runner.invoke(args=["keys", "check"])
    assert checked.exit_code == 0, checked.output
    assert "encrypted values verified: 1." in checked.output

    _use_keys(app, KEY_A)  # a server still on the old key writes a new secret
    with app.app_context():
        db.session.scalars(select(StaffUser)).one().totp_secret = pyotp.random_base32()
        db.session.commit()
    _use_keys(app, KEY_B, KEY_A)
    late = runner.invoke(args=["keys", "check"])
    assert late.exit_code != 0
    label_a = KeyRing(KEY_A).current.label
    assert f"1 document(s) or value(s) are still under key id {label_a}" in late.output
    assert runner.invoke(args=["keys", "rotate"]).exit_code == 0
    assert runner.invoke(args=["keys", "check"]).exit_code == 0

    with app.app_context():  # a value that does not authenticate
        raw = db.session.execute(text("SELECT totp_secret FROM staff_user")).scalar_one()
        damaged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
        db.session.execute(text("UPDATE staff_user SET totp_secret = :s"), {"s": damaged})
        db.session.commit()
    bad = runner.invoke(args=["keys", "check"])
    assert bad.exit_code != 0
    assert "Encrypted values that do not decrypt: ['staff_user.totp_secret #" in bad.output

    with app.app_context():  # one cut short (a truncated copy): listed, not a traceback
        label = raw.split(":", 2)[1]
        db.session.execute(
            text("UPDATE staff_user SET totp_secret = :s"), {"s": f"v1:{label}:AAAA"}
        )
        db.session.commit()
    short = runner.invoke(args=["keys", "check"])
    assert short.exception is None or isinstance(short.exception, SystemExit), short.output
    assert "Encrypted values that do not decrypt: ['staff_user.totp_secret #" in short.output


def test_two_factor_secrets_written_before_encryption_still_work(app: Flask) -> None:
    secret = pyotp.random_base32()
    with app.app_context():
        user_id = make_staff("admin", "admin@example.com").id
        db.session.execute(
            text("UPDATE staff_user SET totp_secret = :s WHERE id = :id"),
            {"s": secret, "id": user_id},
        )
        db.session.commit()
        db.session.expunge_all()
        assert db.session.get(StaffUser, user_id).totp_secret == secret
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert "two-factor secrets re-encrypted: 1" in result.output
    with app.app_context():
        raw = db.session.execute(text("SELECT totp_secret FROM staff_user")).scalar_one()
        assert raw.startswith("v1:")


def test_a_rotation_killed_midway_does_not_block_the_next_one(app: Flask, upload_dir: Path) -> None:
    """A rotation killed between writing its copy and replacing the file leaves the copy
    (``<name>rotating``): the next rotation writes over it and rotates the file."""
    runner = app.test_cli_runner()
    _use_keys(app, KEY_A)
    _, _, stored_name = _one_document(app)
    (upload_dir / f"{stored_name}rotating").write_bytes(b"half a copy")

    _use_keys(app, KEY_B, KEY_A)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Documents re-encrypted: 1" in result.output
    assert (upload_dir / stored_name).read_bytes()[8:12].hex() == KeyRing(KEY_B).current.label
    assert not list(upload_dir.glob("*rotating"))
    _use_keys(app, KEY_B)
    assert runner.invoke(args=["keys", "check"]).exit_code == 0


def test_rotation_re_encrypts_unfinished_requests_too(app: Flask, upload_dir: Path) -> None:
    """A draft's answers and documents are encrypted like a request's: rotation covers them, so
    the old key can go while patients are still filling in requests."""
    runner = app.test_cli_runner()
    _use_keys(app, KEY_A)
    client = app.test_client()
    answer_red_flags(client)
    reach(client, "documents")
    page = client.get("/request/steps/documents").get_data(as_text=True)
    token = CSRF_RE.search(page).group(1)
    client.post(
        "/request/steps/documents",
        data={"csrf_token": token, "files": [(io.BytesIO(pdf_bytes()), "mri.pdf")]},
        content_type="multipart/form-data",
    )
    [stored] = list(upload_dir.iterdir())

    _use_keys(app, KEY_B, KEY_A)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert "Documents re-encrypted: 1" in result.output
    assert "unfinished requests' answers re-encrypted: 1" in result.output

    _use_keys(app, KEY_B)  # the old key is gone: the draft still opens, answers and file
    assert runner.invoke(args=["keys", "check"]).exit_code == 0
    assert "mri.pdf" in client.get("/request/steps/documents").get_data(as_text=True)
    assert client.get("/request/start").get_data(as_text=True).count("checked") >= 1
    assert stored.read_bytes()[8:12].hex() == KeyRing(KEY_B).current.label


def test_rotation_keeps_a_draft_saved_while_it_runs(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rotation reads the old values, then writes each back sealed anew. A patient who saves
    their draft in between (under the current key) keeps what they saved: the write back
    happens only where the stored text is still the one read."""
    from booking import keys
    from booking.requests.drafts import RequestDraft

    _use_keys(app, KEY_A)
    client = app.test_client()
    answer_red_flags(client)
    _use_keys(app, KEY_B, KEY_A)
    real_decrypt = keys.decrypt_text
    saved: list[bool] = []

    def patient_saves_meanwhile(value, ring=None):
        if not saved:  # the patient's save lands between rotation's read and its write
            saved.append(True)
            draft = db.session.scalars(select(RequestDraft)).one()
            db.session.execute(
                update(RequestDraft)
                .where(RequestDraft.id == draft.id)
                .values(answers='{"full_name": ["Saved meanwhile"]}')
            )
        return real_decrypt(value, ring)

    monkeypatch.setattr(keys, "decrypt_text", patient_saves_meanwhile)
    result = app.test_cli_runner().invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    assert saved
    with app.app_context():
        draft = db.session.scalars(select(RequestDraft)).one()
        assert draft.values() == {"full_name": ["Saved meanwhile"]}


# --- free text in the database -----------------------------------------------------------

FREE_TEXT = {
    "diagnosis_other": "Spondylolisthesis grade II",
    "surgery_details": "L4-L5 microdiscectomy in 2019",
    "imaging_when": "MRI at Charite, March 2026",
    "medications": "Pregabalin 75 mg twice daily",
    "allergies": "Penicillin (rash)",
    "other_history": "Type 2 diabetes, well controlled",
}
NOTE = "Patient says the leg pain is worse at night"


def _stored_words(consultation_id: int) -> str:
    """Every free-text column as stored, read with plain SQL (what a dump shows)."""
    row = db.session.execute(
        text(
            "SELECT diagnosis_other, surgery_details, imaging_when, medications, allergies, "
            "other_history FROM medical_history WHERE request_id = :id"
        ),
        {"id": consultation_id},
    ).one()
    bodies = db.session.scalars(
        text("SELECT body FROM request_event WHERE request_id = :id AND body IS NOT NULL"),
        {"id": consultation_id},
    ).all()
    return "\n".join([*row, *bodies])


def test_free_text_history_and_notes_are_unreadable_in_the_database(app: Flask) -> None:
    from booking.dashboard.services import add_note

    with app.app_context():
        consultation = make_request(**FREE_TEXT)
        add_note(consultation, make_staff("coordinator", "c@example.com"), NOTE)
        stored = _stored_words(consultation.id)
        for words in [*FREE_TEXT.values(), NOTE]:
            assert words not in stored
        assert all(line.startswith("v1:") for line in stored.splitlines())
        # Read through the models, the words come back whole.
        db.session.expunge_all()
        history = db.session.get(MedicalHistory, consultation.id)
        assert {name: getattr(history, name) for name in FREE_TEXT} == FREE_TEXT
        assert NOTE in [event.body for event in db.session.scalars(select(RequestEvent))]


def test_document_names_and_descriptions_are_unreadable_in_the_database(app: Flask) -> None:
    """A file's name and what the patient says of it are their own words about their
    health ("MRI L4-5 herniation"): encrypted like the rest of their free text."""
    from booking.documents.models import Document
    from booking.documents.storage import DocumentUpload

    with app.app_context():
        consultation = make_request()
        from booking.manage.services import add_documents

        upload = DocumentUpload(io.BytesIO(pdf_bytes()), "MRI L4-5 herniation.pdf", "Dr. Weber")
        add_documents(consultation, [upload])
        raw = db.session.execute(text("SELECT original_name, description FROM document")).one()
        assert raw[0].startswith("v1:") and raw[1].startswith("v1:")
        assert "herniation" not in raw[0] and "Weber" not in raw[1]
        db.session.expunge_all()
        document = db.session.scalars(select(Document)).one()
        assert (document.original_name, document.description) == (
            "MRI L4-5 herniation.pdf",
            "Dr. Weber",
        )


def test_rotation_re_encrypts_free_text_history_and_notes(app: Flask) -> None:
    from booking.dashboard.services import add_note

    runner = app.test_cli_runner()
    _use_keys(app, KEY_A)
    with app.app_context():
        consultation = make_request(**FREE_TEXT)
        add_note(consultation, make_staff("coordinator", "c@example.com"), NOTE)
        consultation_id = consultation.id
        # A row written before the columns were encrypted is sealed by rotation too.
        db.session.execute(
            text("UPDATE medical_history SET allergies = 'Latex' WHERE request_id = :id"),
            {"id": consultation_id},
        )
        db.session.commit()
        events = db.session.scalar(text("SELECT count(*) FROM request_event WHERE body <> ''"))
        emails = db.session.scalar(text("SELECT count(*) FROM outbox_email"))

    _use_keys(app, KEY_B, KEY_A)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    rotated = 1 + events + emails
    assert f"(history, notes, messages, emails) re-encrypted: {rotated}." in result.output
    again = runner.invoke(args=["keys", "rotate"])
    assert "(history, notes, messages, emails) re-encrypted: 0." in again.output

    _use_keys(app, KEY_B)  # the old key is gone: everything reads with the new one
    label_b = KeyRing(KEY_B).current.label
    with app.app_context():
        stored = _stored_words(consultation_id)
        assert {line.split(":")[1] for line in stored.splitlines()} == {label_b}
        history = db.session.get(MedicalHistory, consultation_id)
        assert history.allergies == "Latex"
        assert history.medications == FREE_TEXT["medications"]
        assert NOTE in [event.body for event in db.session.scalars(select(RequestEvent))]


def test_an_email_waiting_in_the_outbox_holds_no_readable_link(app: Flask) -> None:
    """Until it is sent, an email holds its private link whole (sent, the token is removed):
    its bodies are encrypted at rest, so a copy of the database opens nothing meanwhile. The
    worker reads them through the model."""
    from booking.notifications.models import OutboxEmail

    with app.app_context():
        make_request(email="erika@example.com")
        raw = db.session.execute(
            text(
                "SELECT body_text, body_html FROM outbox_email WHERE template = 'request_received'"
            )
        ).all()
        assert raw and all(body.startswith("v1:") for row in raw for body in row)
        assert "/manage/open/" not in repr(raw) and "erika" not in repr(raw).lower()
        email = db.session.scalars(
            select(OutboxEmail).where(OutboxEmail.template == "request_received")
        ).first()
        assert "/manage/open/" in email.body_text


def test_rotation_goes_a_batch_at_a_time_and_changes_no_last_changed_time(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every email ever sent is in the outbox, with its bodies: rotation reads the rows a
    few at a time (here 2), and sealing a value again is no change (an appointment's
    updated_at stays: the resend of failed emails reads it as the appointment's last
    change)."""
    from datetime import UTC, datetime, timedelta

    from booking import keys
    from booking.scheduling.models import Appointment
    from tests.factories import make_appointment_type, make_location

    monkeypatch.setattr(keys, "ROWS_AT_ONCE", 2)
    runner = app.test_cli_runner()
    _use_keys(app, KEY_A)
    then = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    with app.app_context():
        for n in range(3):
            make_request(email=f"p{n}@example.com")  # two emails each
        consultation = make_request(email="video@example.com")
        starts = then + timedelta(days=400)
        db.session.add(
            Appointment(
                request_id=consultation.id,
                specialist_id=make_staff("specialist", "s@example.com").id,
                location_id=make_location().id,
                appointment_type_id=make_appointment_type().id,
                starts_at=starts,
                ends_at=starts + timedelta(minutes=45),
                blocked_until=starts + timedelta(minutes=55),
                uid="rotation@example.com",
                join_link="https://meet.example.org/room?pwd=Xy7",
            )
        )
        db.session.commit()
        db.session.execute(update(Appointment).values(updated_at=then))
        db.session.commit()
        emails = db.session.scalar(text("SELECT count(*) FROM outbox_email"))
    _use_keys(app, KEY_B, KEY_A)
    result = runner.invoke(args=["keys", "rotate"])
    assert result.exit_code == 0, result.output
    label_b = KeyRing(KEY_B).current.label
    with app.app_context():
        stored = db.session.execute(text("SELECT body_text FROM outbox_email")).scalars().all()
        assert len(stored) == emails >= 8
        assert {body.split(":")[1] for body in stored} == {label_b}  # every batch
        appointment = db.session.scalars(select(Appointment)).one()
        assert appointment.join_link == "https://meet.example.org/room?pwd=Xy7"
        assert appointment.updated_at == then


def test_a_new_or_rewritten_file_is_synced_with_its_folder_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's own fsync does not make its name durable: after a power cut the folder
    may not hold a file whose row was committed. The folder is synced too, after a save and
    after a key rotation's replacement. (os.fsync is watched, not replaced: it still runs.)"""
    storage = DocumentStorage(tmp_path, KeyRing(KEY_A))
    real_fsync = os.fsync
    synced: list[bool] = []  # whether each fsync was of a folder

    def watched(fd: int) -> None:
        synced.append(os.path.isdir(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watched)
    content = pdf_of(1000)
    name = store(storage, content)
    assert synced == [False, True]  # the file, then its folder
    synced.clear()
    rotated = DocumentStorage(tmp_path, KeyRing(KEY_B, [KEY_A]))
    rotated.reencrypt(name, hashlib.sha256(content).hexdigest())
    assert synced == [False, True]
