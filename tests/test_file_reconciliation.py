"""``flask files reconcile`` and the worker's nightly job: upload files no row names (a
worker killed while writing one) are removed once an hour old, rows whose file is gone are
reported, and a dry run changes nothing."""

from __future__ import annotations

import io
import logging
import os
import time
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from booking.documents.models import Document
from booking.documents.storage import DocumentUpload, get_storage, saved_uploads
from booking.extensions import db
from booking.requests.files import reconcile_files
from tests.factories import make_request
from tests.support import pdf_bytes, stored_files

TWO_HOURS = 2 * 60 * 60


def plant_orphans(app: Flask, upload_dir: Path) -> tuple[str, str, Document]:
    """An old orphan (a partial encrypted file, as a killed worker leaves), a young one (an
    upload whose row is not committed yet) and a request's document whose file is gone."""
    with app.app_context():
        storage = get_storage()
        old = storage.save(io.BytesIO(pdf_bytes()), 10**7).stored_name
        young = storage.save(io.BytesIO(pdf_bytes()), 10**7).stored_name
        consultation = make_request(documents=2)
        lost, kept = consultation.documents
        (upload_dir / lost.stored_name).unlink()
        db.session.expunge_all()
    (upload_dir / old).write_bytes((upload_dir / old).read_bytes()[:100])  # cut short
    an_hour_and_more_ago = time.time() - TWO_HOURS
    os.utime(upload_dir / old, (an_hour_and_more_ago, an_hour_and_more_ago))
    # The request's own files are as old: a row names them, so they stay whatever their age.
    os.utime(upload_dir / kept.stored_name, (an_hour_and_more_ago, an_hour_and_more_ago))
    return old, young, lost


def test_dry_run_reports_and_removes_nothing_then_the_orphan_is_removed(
    app: Flask, upload_dir: Path
) -> None:
    old, young, lost = plant_orphans(app, upload_dir)
    files_before = stored_files(upload_dir)
    runner = app.test_cli_runner()

    result = runner.invoke(args=["files", "reconcile", "--dry-run"])
    assert f"orphan {old}" in result.output
    assert young not in result.output
    assert f"document {lost.id}: {lost.stored_name}" in result.output
    assert "would remove 1" in result.output
    assert result.exit_code == 1  # a row has lost its file: someone must restore it
    assert stored_files(upload_dir) == files_before

    result = runner.invoke(args=["files", "reconcile"])
    assert "removed 1" in result.output
    assert f"document {lost.id}: {lost.stored_name}" in result.output
    remaining = {p.name for p in stored_files(upload_dir)}
    assert old not in remaining
    assert young in remaining  # may still be an upload in progress
    with app.app_context():
        names = set(db.session.scalars(select(Document.stored_name)))
    assert names - {lost.stored_name} <= remaining  # every other document kept its file
    assert len(names) == 2  # the row without a file is reported, not deleted


def test_the_nightly_job_removes_an_orphan(app: Flask, upload_dir: Path) -> None:
    old, young, _lost = plant_orphans(app, upload_dir)
    app.extensions["spineconsult.reconcile_files"].call_local()  # what the worker runs
    remaining = {p.name for p in stored_files(upload_dir)}
    assert old not in remaining and young in remaining


def test_a_file_that_cannot_be_deleted_after_a_failure_hides_neither_the_error_nor_the_rest(
    app: Flask, upload_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """All or nothing with a disk that misbehaves: the first error is the one raised, every
    other file is still deleted, and the one left is logged (the nightly job finds it)."""
    uploads = [
        DocumentUpload(io.BytesIO(pdf_bytes(f"Report {n}")), f"report-{n}.pdf", None)
        for n in range(3)
    ]
    with (
        app.app_context(),
        caplog.at_level(logging.ERROR, logger="booking"),
        pytest.raises(RuntimeError, match="the change failed"),
        saved_uploads(uploads) as stored,
    ):
        stuck = upload_dir / stored[0].stored_name
        stuck.unlink()
        stuck.mkdir()  # something a file cannot be unlinked from
        raise RuntimeError("the change failed")
    assert stored_files(upload_dir) == []  # the other two are gone
    assert stuck.is_dir()
    assert "could not delete a stored file after a failed change" in caplog.text


def test_a_copy_left_by_a_killed_key_rotation_is_removed_once_an_hour_old(
    app: Flask, upload_dir: Path
) -> None:
    with app.app_context():
        [document] = make_request(documents=1).documents
        stored_name = document.stored_name
    old, young = upload_dir / f"{stored_name}rotating", upload_dir / f"{'0' * 32}rotating"
    for path in (old, young):
        path.write_bytes(b"half a copy")
    os.utime(old, (time.time() - TWO_HOURS, time.time() - TWO_HOURS))
    not_ours = upload_dir / "notes.txt"  # a name we never give: left alone
    not_ours.write_text("the administrator's")
    os.utime(not_ours, (time.time() - TWO_HOURS, time.time() - TWO_HOURS))

    with app.app_context():
        result = reconcile_files()
    assert result.orphan_files == [old.name]
    assert result.unknown_files == ["notes.txt"]
    assert not old.exists()
    assert young.exists()  # a rotation may be writing it now
    assert (upload_dir / stored_name).exists()
