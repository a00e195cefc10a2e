"""SpineConsult deployed as docs/production.md says, for the browser to use.

* nginx from Debian's packages terminates TLS with a certificate made here, running
  ``deploy/nginx/spineconsult.conf`` itself (its placeholders filled in, nothing else changed)
  inside a minimal top-level nginx.conf of the test's own (pid, logs and temporary files in the
  test's folder), on free ports on 127.0.0.1.
* gunicorn serves ``wsgi:app`` with the production settings (``SPINECONSULT_ENV=production``,
  the project's gunicorn.conf.py), behind it; a real ``flask worker`` delivers the email to a
  real SMTP server (aiosmtpd, ``tests/smtp.py``).
* PostgreSQL and Redis when ``TEST_DATABASE_URL`` and ``REDIS_URL`` are set (a database of the
  suite's own, migrated with ``flask db upgrade`` and dropped after; a queue name of its own),
  else a SQLite file and Huey's SQLite queue.

One deployment serves a whole test module: starting it takes seconds, and every journey works
on its own requests and accounts. Without nginx (or Chromium) the tests are skipped with the
reason, unless ``E2E_REQUIRE_BROWSER=1`` (set by ``.ci/run``) makes that a failure.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from flask import Flask
from playwright.sync_api import Browser, Page, Response, expect

from booking import create_app
from booking.crypto import new_key
from booking.extensions import db
from booking.patients.services import CONFIRMATION_ADDRESS_SCOPE
from booking.security import address_key

# The browser itself (Debian's chromium, skipped or failed as for tests/e2e): imported, so this
# folder uses the same launch settings without a copy of the fixture.
from tests.e2e.conftest import (  # noqa: F401
    CLINIC_EMAIL,
    LOCALE,
    TIMEOUT_MS,
    browser_type_launch_args,
    pdf_file,
    seed_schedule,
)
from tests.e2e.pages import PATIENT_EMAIL
from tests.factories import make_staff
from tests.smtp import SmtpServer, free_port
from tests.support import (
    Service,
    fresh_postgres_database,
    running_clamd,
    start_service,
    start_worker,
    stop_worker,
    wait_until,
)

ROOT = Path(__file__).resolve().parents[2]
PROXY_CONFIG = ROOT / "deploy" / "nginx" / "spineconsult.conf"
PLACEHOLDER_RE = re.compile(r"__[A-Z][A-Z_]*__")
PG_URL = os.environ.get("TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
HOST = "127.0.0.1"

COORDINATOR = "chris.coordinator@example.com"
ADMIN = "alex.admin@example.com"

# Generous: two cores shared with other test runs, a real proxy, two real processes behind it.
NAVIGATION_TIMEOUT_MS = 30_000
ACTION_TIMEOUT_MS = 20_000
START_TIMEOUT_S = 90

NO_NGINX = (
    "nginx is not installed (Debian's nginx-light): run `make browser` as root "
    "(apt-get install -y nginx-light)"
)


def find_nginx() -> str | None:
    """nginx's path: in /usr/sbin, which is not on every user's PATH."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


# --- processes ---------------------------------------------------------------------------


def answers_http(port: int, path: str, status: int) -> bool:
    """Whether 127.0.0.1:``port`` answers ``GET path`` with ``status`` (plain HTTP)."""
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == status
    except OSError:  # not listening yet
        return False
    finally:
        connection.close()


# --- TLS and the proxy ------------------------------------------------------------------


def make_certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost (as subject alternative names:
    browsers ignore the common name), valid for a day; its PEM chain and key files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "SpineConsult test proxy")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(HOST)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "proxy.crt", folder / "proxy.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def render_proxy_config(values: dict[str, str]) -> str:
    """deploy/nginx/spineconsult.conf with its placeholders filled in: every placeholder must
    have a value and every value a placeholder, so the file and this suite cannot drift."""
    template = PROXY_CONFIG.read_text()
    placeholders = set(PLACEHOLDER_RE.findall(template))
    assert placeholders == set(values), (
        f"{PROXY_CONFIG.relative_to(ROOT)} has placeholders {sorted(placeholders)}, "
        f"the suite fills in {sorted(values)}"
    )
    return PLACEHOLDER_RE.sub(lambda match: values[match.group(0)], template)


def nginx_main_config(folder: Path, site: Path) -> str:
    """What /etc/nginx/nginx.conf is on a server, cut to what a test run needs: every file in
    ``folder``, in the foreground, errors on stderr (the service's log), the site file
    included in the http block as conf.d is."""
    # As root, nginx's workers would switch to "nobody", which cannot read pytest's 0700
    # folders; the user directive is ignored (with a warning) when not root.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\n"
        "worker_processes 1;\n"
        f"pid {folder / 'nginx.pid'};\n"
        "error_log stderr notice;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        "    access_log off;\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


# --- the database and the queue ---------------------------------------------------------


@contextmanager
def fresh_database(folder: Path) -> Iterator[str]:
    """A PostgreSQL database of the suite's own (dropped after) when TEST_DATABASE_URL is set,
    else a SQLite file in ``folder``."""
    if not PG_URL:
        yield f"sqlite:///{folder / 'spineconsult.sqlite3'}"
        return
    with fresh_postgres_database(PG_URL, "production") as url:
        yield url


def forget_redis_state(redis_url: str, queue_name: str) -> None:
    """Drop this run's queue and the rate-limit counts it left: for 127.0.0.1 (every sign-in
    through the proxy counts against it) and for the patient's email address (every receipt
    counts against REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT, which would hold the next run's
    receipts back). Repeated runs would otherwise reach the hourly limits."""
    import redis
    from huey import RedisHuey

    queue = RedisHuey(queue_name, url=redis_url)
    queue.storage.flush_all()
    queue.storage.conn.connection_pool.disconnect()
    client = redis.Redis.from_url(redis_url)
    receipts = address_key(CONFIRMATION_ADDRESS_SCOPE, PATIENT_EMAIL)
    try:
        keys = [
            key
            for pattern in (f"LIMITS:LIMITER/{HOST}/*", f"LIMITS:LIMITER/{receipts}/*")
            for key in client.scan_iter(pattern)
        ]
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# --- the deployment ---------------------------------------------------------------------


@dataclass(frozen=True)
class _AppHolder:
    """What tests.e2e.conftest.seed_schedule needs of a server: its app."""

    app: Flask


@dataclass
class Deployment:
    """The running clinic, as patients and staff reach it: ``url`` through the TLS proxy."""

    url: str  # https://127.0.0.1:<port>, the app's PUBLIC_BASE_URL
    https_port: int
    http_port: int  # the proxy's plain-HTTP server (it only redirects)
    certificate: Path
    proxy_access_log: Path
    app: Flask  # the suite's own view of the database (the setup, the time zone)
    mail: SmtpServer
    env: dict[str, str]  # the environment file gunicorn and the worker run with
    services: list[Service] = field(default_factory=list)

    def __call__(self, path: str) -> str:
        return self.url + path

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.app.config["CLINIC_TIMEZONE"])

    @property
    def worker(self) -> subprocess.Popen[bytes]:
        return self.service("worker").popen

    def service(self, name: str) -> Service:
        [service] = [s for s in self.services if s.name == name]
        return service

    def diagnostics(self) -> str:
        return "\n".join(f"--- {s.name}:\n{s.output()[-4000:]}" for s in self.services)

    def run_job(self, name: str) -> str:
        """Run the periodic job ``name`` (``flask jobs list``) now, as an operator would from
        a shell on the server with the deployment's environment (docs/production.md,
        "Workers"): ``flask jobs run``, whose line saying what it did is returned; the real
        worker delivers the email it writes."""
        ran = subprocess.run(
            [sys.executable, "-m", "flask", "jobs", "run", name],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert ran.returncode == 0, ran.stderr.decode(errors="replace")[-3000:]
        return ran.stdout.decode()

    def tls_context(self) -> ssl.SSLContext:
        """A client that trusts exactly the certificate made for this run."""
        return ssl.create_default_context(cafile=str(self.certificate))


def production_env(
    folder: Path, database_url: str, public_url: str, mail_port: int
) -> dict[str, str]:
    """The environment file of docs/production.md ("Environment") for this run: the same for
    the migration, gunicorn and the worker."""
    env = {
        **os.environ,
        "SPINECONSULT_ENV": "production",
        "FLASK_APP": "wsgi",
        "SECRET_KEY": secrets.token_hex(32),
        "ENCRYPTION_KEY": new_key(),
        "DATABASE_URL": database_url,
        "REDIS_URL": REDIS_URL,  # empty: Huey's SQLite queue, rate limits in memory
        "HUEY_NAME": f"production-{uuid.uuid4().hex[:12]}",
        "HUEY_SQLITE_PATH": str(folder / "huey.sqlite3"),
        "UPLOAD_DIR": str(folder / "uploads"),
        "MAIL_SERVER": HOST,
        "MAIL_PORT": str(mail_port),
        "STAFF_NOTIFICATION_EMAIL": CLINIC_EMAIL,
        "PUBLIC_BASE_URL": public_url,
        "TRUSTED_PROXIES": "1",
        "CLINIC_NAME": "Test Spine Clinic",
        # Without TEST_DATABASE_URL the deployment runs on a SQLite file: allowed, as a
        # single-machine install would allow it (production refuses it otherwise).
        "ALLOW_SQLITE_IN_PRODUCTION": "1" if database_url.startswith("sqlite") else "",
        # Readiness waits for the worker too, so the suite starts with every service working
        # (by default a server is ready without one: its emails wait in the outbox).
        "HEALTH_QUEUE_REQUIRED": "1",
    }
    # Production's defaults otherwise (HTTPS and HSTS, two-factor sign-in for admins, rate
    # limits in Redis), whatever the shell running the tests has set: tests/conftest.py takes
    # every setting config.py reads out of this process's environment before any test runs.
    return env


def set_up_clinic(env: dict[str, str]) -> Flask:
    """``flask db upgrade``, then what an administrator sets up before opening: a specialist's
    hours at a location, the appointment types, and the staff accounts of the journeys."""
    migrate = subprocess.run(
        [sys.executable, "-m", "flask", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr.decode(errors="replace")[-3000:]
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": env["DATABASE_URL"],
            "UPLOAD_DIR": env["UPLOAD_DIR"],
            "ENCRYPTION_KEY": env["ENCRYPTION_KEY"],
        }
    )
    seed_schedule(_AppHolder(app))  # type: ignore[arg-type]
    with app.app_context():
        make_staff("coordinator", COORDINATOR)
        make_staff("admin", ADMIN)
        db.session.remove()
        db.engine.dispose()  # the servers own the database from here on
    return app


def start_app_server(env: dict[str, str], folder: Path, port: int) -> Service:
    """docs/production.md's gunicorn command (with the project's gunicorn.conf.py), on
    127.0.0.1, two processes for a two-core machine."""
    command = [
        *(sys.executable, "-m", "gunicorn", "--bind", f"{HOST}:{port}"),
        *("--workers", "2", "--threads", "2", "--timeout", "120", "--graceful-timeout", "5"),
        *("--no-control-socket", "wsgi:app"),
    ]
    return start_service("gunicorn", command, env, folder, signal.SIGTERM)


def start_mail_worker(env: dict[str, str], folder: Path) -> Service:
    log = folder / "worker.log"
    with log.open("wb") as out:
        popen = start_worker(env, output=out.fileno())
    return Service("worker", popen, log, signal.SIGINT)  # Huey's graceful stop


def start_proxy(
    nginx: str, folder: Path, placeholders: dict[str, str], env: dict[str, str]
) -> Service:
    """nginx running deploy/nginx/spineconsult.conf, checked with ``nginx -t`` first."""
    site = folder / "spineconsult.conf"
    site.write_text(render_proxy_config(placeholders))
    main_config = folder / "nginx.conf"
    main_config.write_text(nginx_main_config(folder, site))
    # -e: the error log before the configuration names one (the packaged default is not ours).
    command = [nginx, "-p", str(folder), "-e", "stderr", "-c", str(main_config)]
    checked = subprocess.run([*command, "-t"], capture_output=True, timeout=30, check=False)
    assert checked.returncode == 0, checked.stderr.decode(errors="replace")
    return start_service("nginx", command, env, folder, signal.SIGQUIT)  # graceful stop


def stop_all(services: list[Service]) -> None:
    for service in reversed(services):
        if service.name == "worker":
            stop_worker(service.popen)  # Ctrl-C, so Huey finishes the task it is running
        else:
            service.stop()


@pytest.fixture(scope="module")
def mail_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clamd_socket(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Production requires virus scanning: a real clamd (tests/support.py) for the suite."""
    with running_clamd(tmp_path_factory.mktemp("clamd")) as path:
        yield path


@pytest.fixture(scope="module")
def deployment(
    tmp_path_factory: pytest.TempPathFactory, mail_server: SmtpServer, clamd_socket: str
) -> Iterator[Deployment]:
    nginx = find_nginx()
    if nginx is None:
        if os.environ.get("E2E_REQUIRE_BROWSER") == "1":
            pytest.fail(NO_NGINX, pytrace=False)
        pytest.skip(NO_NGINX)
    folder = tmp_path_factory.mktemp("production")
    https_port, http_port, app_port = free_port(), free_port(), free_port()
    public_url = f"https://{HOST}:{https_port}"

    with fresh_database(folder) as database_url:
        env = production_env(folder, database_url, public_url, mail_server.port)
        env["CLAMAV_ADDRESS"] = clamd_socket
        app = set_up_clinic(env)
        cert, key = make_certificate(folder)
        deployment = Deployment(
            url=public_url,
            https_port=https_port,
            http_port=http_port,
            certificate=cert,
            proxy_access_log=folder / "proxy-access.log",
            app=app,
            mail=mail_server,
            env=env,
        )
        services = deployment.services
        try:
            services.append(start_app_server(env, folder, app_port))
            services.append(start_mail_worker(env, folder))
            placeholders = {
                "__SERVER_NAME__": HOST,
                "__PUBLIC_BASE_URL__": public_url,
                "__LISTEN_HTTPS__": f"{HOST}:{https_port}",
                "__LISTEN_HTTP__": f"{HOST}:{http_port}",
                "__APP_SERVER__": f"{HOST}:{app_port}",
                "__CERTIFICATE__": str(cert),
                "__CERTIFICATE_KEY__": str(key),
                "__ACCESS_LOG__": str(deployment.proxy_access_log),
            }
            services.append(start_proxy(nginx, folder, placeholders, env))
            # Ready as the load balancer sees it: the database, the queue and a heartbeat the
            # worker wrote through the queue; then the proxy, by its redirect server.
            wait_until(
                lambda: answers_http(app_port, "/health/ready", 200), "readiness", START_TIMEOUT_S
            )
            wait_until(lambda: answers_http(http_port, "/", 301), "the proxy", START_TIMEOUT_S)
            yield deployment
        except BaseException:
            print(deployment.diagnostics())  # pytest shows it with the error
            raise
        finally:
            stop_all(services)
            with app.app_context():
                db.session.remove()
                db.engine.dispose()
            if REDIS_URL:
                forget_redis_state(REDIS_URL, env["HUEY_NAME"])


# --- the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _production_timeouts() -> Iterator[None]:
    """expect()'s timeout for this module (its own actions' timeout), then tests/e2e's again."""
    expect.set_options(timeout=ACTION_TIMEOUT_MS)
    yield
    expect.set_options(timeout=TIMEOUT_MS)


class PageHeadersError(AssertionError):
    """A page the browser got from the clinic came with the wrong headers, or a form was refused."""


@dataclass
class Visitor:
    """One person's browser (its own cookies) and every page it loaded or form it sent."""

    deployment: Deployment
    page: Page
    documents: list[Response]

    def check(self) -> None:
        """Fail now, naming each page the browser got wrong (``header_problems``): before a
        form is sent, so a refused header fails as itself, not as a form that did nothing."""
        problems = header_problems(self.deployment, self.documents)
        if problems:
            raise PageHeadersError("\n".join(problems))


def header_problems(deployment: Deployment, documents: list[Response]) -> list[str]:
    """What is wrong with the pages the browser got from the clinic: every HTML page shown must
    keep referrers within the site (``no-referrer`` makes Chromium send ``Origin: null`` with a
    form, which the app must refuse) and carry HSTS; every form post must succeed."""
    problems: list[str] = []
    posts = 0
    for response in documents:
        if not response.url.startswith(deployment.url):
            continue
        headers = response.all_headers()
        method = response.request.method
        where = f"{method} {urlsplit(response.url).path} ({response.status})"
        if method == "POST":
            posts += 1
            if response.status >= 400:
                problems.append(f"{where}: the form post was refused")
        # A redirect is never shown (and the one from an emailed link may rightly keep its
        # token from the next page with no-referrer); the pages it leads to are checked.
        if 300 <= response.status < 400 or not headers.get("content-type", "").startswith(
            "text/html"
        ):
            continue
        policy = headers.get("referrer-policy")
        if policy is None or "no-referrer" in [p.strip() for p in policy.split(",")]:
            problems.append(f"{where}: Referrer-Policy is {policy!r}")
        if "max-age=" not in headers.get("strict-transport-security", ""):
            problems.append(f"{where}: no Strict-Transport-Security")
    if not documents:
        problems.append("the browser loaded no page")
    return problems


@contextmanager
def visiting(deployment: Deployment, browser: Browser) -> Iterator[Visitor]:
    """A fresh browser (no cookies) at the clinic. On leaving, every page it loaded is checked
    (``header_problems``); when the journey failed, those problems are named first, since a
    refused header explains a refused form."""
    # The certificate was made a moment ago and no browser trusts it; the page is still a
    # secure context on https://127.0.0.1, so Secure cookies and Origin work as in production.
    context = browser.new_context(locale=LOCALE, ignore_https_errors=True)
    context.set_default_timeout(ACTION_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    documents: list[Response] = []

    def keep(response: Response) -> None:
        if response.request.resource_type == "document":
            documents.append(response)

    context.on("response", keep)
    visitor = Visitor(deployment, context.new_page(), documents)
    try:
        try:
            yield visitor
        except PageHeadersError:
            raise
        except Exception as error:
            problems = header_problems(deployment, documents)
            if problems:
                raise PageHeadersError("\n".join(problems)) from error
            print(deployment.diagnostics())  # pytest shows it with the failure
            raise
        visitor.check()
    finally:
        context.close()
