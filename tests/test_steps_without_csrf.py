"""The steps with CSRF protection switched off (``WTF_CSRF_ENABLED = False``, as some tools and
test setups run the app): no step may depend on the token field being there."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient

from booking.requests import triage
from tests.support import pdf_bytes, reach, step_answers


@pytest.fixture
def app_settings(app_settings: dict[str, Any]) -> dict[str, Any]:
    return {**app_settings, "WTF_CSRF_ENABLED": False}


def test_every_kind_of_step_post_works_without_the_token(client: FlaskClient) -> None:
    answers = {f"red_{flag.code}": "no" for flag in triage.ASKED}
    assert client.post("/request/start", data=answers).status_code == 303
    time = client.post("/request/steps/time", data={**step_answers("time"), "nav": "next"})
    assert time.status_code == 303
    about = client.post("/request/steps/about", data={**step_answers("about"), "nav": "next"})
    assert about.status_code == 303
    wrong = client.post("/request/steps/about", data={"full_name": "", "nav": "next"})
    assert wrong.status_code == 422
    reach(client, "documents")
    upload = client.post(
        "/request/steps/documents",
        data={
            "nav": "upload",
            "description": "MRI \u202e",
            "files": [(io.BytesIO(pdf_bytes()), "a.pdf")],
        },
        content_type="multipart/form-data",
    )
    assert upload.status_code == 422  # the description's own message, not a crash
    upload = client.post(
        "/request/steps/documents",
        data={"nav": "upload", "files": [(io.BytesIO(pdf_bytes()), "a.pdf")]},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 303
    assert "a.pdf" in client.get("/request/steps/documents").get_data(as_text=True)
