"""The benchmark's draft (``bench.load.start_draft``, ``bench.profile --draft``) opens every
step: the step pages' rows of ``make bench`` measure the pages, not a redirect.

When the steps learned to send a patient back to the first step not saved, the bench's draft
(the main problem only) was sent back too: every step's scenario measured redirects as errors,
and ``bench.profile --draft`` stopped with an AttributeError. Run here against the real app."""

from __future__ import annotations

from flask.testing import FlaskClient

from bench.load import STEP_ANSWERS
from bench.profile import _start_draft
from booking.patients import steps


def test_the_bench_draft_opens_every_step_and_every_part(client: FlaskClient) -> None:
    _start_draft(client)
    for code in steps.BY_CODE:
        path = f"/request/steps/{code}"
        for part in range(1, steps.pages_of(code, STEP_ANSWERS) + 1):
            response = client.get(
                path if part == 1 else f"{path}?page={part}", base_url="https://localhost"
            )
            assert response.status_code == 200, (path, part, response.headers.get("Location"))
