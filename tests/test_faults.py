"""Faults: the database away gives a clear 503, and the app recovers by itself."""

from __future__ import annotations

from pathlib import Path

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
        assert "temporarily unavailable" in page
        assert "Traceback" not in page and "sqlite" not in page.lower()

        # The database comes back: the next request works without a restart.
        missing_dir.mkdir()
        with app.app_context():
            db.create_all()
        assert client.get("/request/time").status_code in (200, 302)
        assert client.get("/request").status_code == 200
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
        assert "temporarily unavailable" in response.get_data(as_text=True)
    finally:
        with app.app_context():
            db.engine.dispose()
