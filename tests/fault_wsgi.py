"""``wsgi:app`` with faults on the pages whose addresses carry secrets, for
tests/test_access_log.py: gunicorn serves it as it serves the real one.

* On a private link's pages (/manage/...) a teardown fails, so the error escapes the app and
  gunicorn itself logs "Error handling request GET /manage/open/<token>" with the traceback.
* On an unfinished request's link (/request/resume/<token>) the view's error is handled by
  the app, which logs Flask's "Exception on <path>".
Both faults quote the path, as real errors do.
"""

from __future__ import annotations

from flask import request

from wsgi import app


@app.before_request
def _fail_on_resume_links() -> None:
    if request.path.startswith("/request/resume/"):
        raise RuntimeError(f"fault injected on {request.path}")


@app.teardown_request
def _fail_on_private_links(_error: BaseException | None) -> None:
    if request.path.startswith("/manage/"):
        raise RuntimeError(f"fault injected on {request.path}")
