"""Application settings.

This module is the only place that reads ``os.environ``. Every setting the clinic can change is
listed in README.md with its default.
"""

from __future__ import annotations

import os
from email.headerregistry import Address
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = BASE_DIR / "instance"

MB = 1024 * 1024


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_int(name: str, default: int) -> int:
    return int(_env(name, str(default)))  # type: ignore[arg-type]


def _env_float(name: str, default: float) -> float:
    return float(_env(name, str(default)))  # type: ignore[arg-type]


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_map(name: str, default: str = "") -> dict[str, str]:
    """``"en:112,es:911"`` as ``{"en": "112", "es": "911"}``."""
    pairs = (item.split(":", 1) for item in (_env(name, default) or "").split(",") if ":" in item)
    return {key.strip(): value.strip() for key, value in pairs if key.strip() and value.strip()}


# Keys published in this file, for development and the tests: anyone can read them, so anyone
# could sign sessions, CSRF tokens and the older signed manage links with them, or decrypt what
# they encrypted. Production refuses to start with any of them (booking.create_app).
DEVELOPMENT_SECRET_KEY = "dev-only-not-secret"  # noqa: S105 - published on purpose
DEVELOPMENT_ENCRYPTION_KEY = "ZGV2LW9ubHktbm90LXNlY3JldC1kb2N1bWVudC1rZXk="
TESTING_SECRET_KEY = "test-only-not-secret"  # noqa: S105 - published on purpose
TESTING_ENCRYPTION_KEY = "dGVzdC1vbmx5LW5vdC1zZWNyZXQtZG9jLWtleS0zMmI="
PUBLISHED_SECRET_KEYS = (DEVELOPMENT_SECRET_KEY, TESTING_SECRET_KEY)
PUBLISHED_ENCRYPTION_KEYS = (DEVELOPMENT_ENCRYPTION_KEY, TESTING_ENCRYPTION_KEY)
# Production's shortest SECRET_KEY: `secrets.token_hex(32)` gives 64 characters.
MIN_SECRET_KEY_LENGTH = 32
# The sender's address when MAIL_DEFAULT_SENDER is not set (production warns of it at start-up).
EXAMPLE_SENDER_ADDRESS = "no-reply@example.com"


def default_sender(clinic_name: str) -> str:
    """The sender when MAIL_DEFAULT_SENDER is not set (``booking.create_app``): the clinic's
    name, as its emails are signed (CLINIC_NAME), over the example address. Written by the
    email library, which quotes a name with a comma, quotes or brackets so that it stays one
    name; not ``formataddr``, whose encoded form of a non-ASCII name Flask-Mail would encode
    again (the reader would see ``=?utf-8?...``)."""
    return str(Address(display_name=clinic_name, addr_spec=EXAMPLE_SENDER_ADDRESS))


def _sqlalchemy_url(url: str) -> str:
    """Use psycopg 3 for PostgreSQL URLs given in the common short forms."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Config:
    """Settings shared by every environment; each can be overridden by an environment variable."""

    SECRET_KEY = _env("SECRET_KEY")

    SQLALCHEMY_DATABASE_URI = _sqlalchemy_url(
        _env("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'spineconsult.sqlite3'}")  # type: ignore[arg-type]
    )
    # hide_parameters: a failed statement's error (logged with its traceback by the web app,
    # the worker and Huey) names the statement but not its values, which are patients'
    # addresses, names, and subjects with appointment times.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True, "hide_parameters": True}
    # Production refuses a sqlite: DATABASE_URL (an unset one falls back to a file in
    # instance/): one machine's file, no concurrent writers, not the PostgreSQL the backups
    # and docs/production.md describe. A deliberate single-machine install (and the test and
    # benchmark runs of the production settings) may allow it.
    ALLOW_SQLITE_IN_PRODUCTION = _env_bool("ALLOW_SQLITE_IN_PRODUCTION", False)

    # Redis is optional: without it the task queue lives in a SQLite file in instance/.
    REDIS_URL = _env("REDIS_URL")
    HUEY_SQLITE_PATH = _env("HUEY_SQLITE_PATH", str(INSTANCE_DIR / "huey.sqlite3"))
    HUEY_BACKEND = "redis" if REDIS_URL else "sqlite"
    # The queue's name: app servers and workers of one clinic must use the same one.
    HUEY_NAME = _env("HUEY_NAME", "spineconsult")

    # Documents and staff two-factor secrets are encrypted at rest (AES-256-GCM) with
    # ENCRYPTION_KEY (make one with `flask keys new`). While rotating, the previous keys go in
    # ENCRYPTION_OLD_KEYS (comma separated) until `flask keys rotate` has re-encrypted everything.
    # Lose the key and the documents cannot be read: keep it apart from the backups.
    ENCRYPTION_KEY = _env("ENCRYPTION_KEY")
    ENCRYPTION_OLD_KEYS = _env("ENCRYPTION_OLD_KEYS", "")

    # Where uploaded documents are kept: never inside a static folder.
    UPLOAD_DIR = _env("UPLOAD_DIR", str(INSTANCE_DIR / "uploads"))
    MAX_DOCUMENTS = _env_int("MAX_DOCUMENTS", 10)
    # Every upload is scanned for malware by ClamAV's daemon (clamd) before it is stored:
    # CLAMAV_ADDRESS is its unix socket (Debian's clamav-daemon: /run/clamav/clamd.ctl) or
    # host:port. A scanner down or silent for CLAMAV_TIMEOUT seconds either refuses the upload
    # ("refuse": the patient is asked to try again later) or stores it as not yet scanned,
    # hidden from staff until the worker's retry passes ("hold"). Required in production;
    # off in development (`make run` needs no ClamAV).
    CLAMAV_ENABLED = _env_bool("CLAMAV_ENABLED", True)
    CLAMAV_ADDRESS = _env("CLAMAV_ADDRESS", "/run/clamav/clamd.ctl")
    CLAMAV_TIMEOUT = _env_float("CLAMAV_TIMEOUT", 30.0)
    CLAMAV_WHEN_DOWN = _env("CLAMAV_WHEN_DOWN", "refuse")
    CLAMAV_REQUIRED = False
    MAX_DOCUMENT_MB = _env_int("MAX_DOCUMENT_MB", 20)
    # A request being filled in is kept this many days after its last change (then purged
    # with its files by the worker's daily job).
    DRAFT_DAYS = _env_int("DRAFT_DAYS", 7)
    # A shared computer's next user must not find a patient's unfinished request: once it
    # names the patient ("About you" saved) and nothing was saved to it from this browser for
    # this many minutes, its pages show only "email me the link" or "start a new request"
    # (booking/patients/views.py, ``_idle_hidden``). 0: never hidden.
    DRAFT_BROWSER_IDLE_MINUTES = _env_int("DRAFT_BROWSER_IDLE_MINUTES", 60)
    # The confirmation after sending (the time, the email address, the private link) is
    # shown in the patient's browser this long, then only through the link in the email.
    CONFIRMATION_PAGE_MINUTES = _env_int("CONFIRMATION_PAGE_MINUTES", 30)
    # A patient asked for missing information is reminded once, this many days later (0: never).
    ASK_REMINDER_DAYS = _env_int("ASK_REMINDER_DAYS", 5)

    CLINIC_NAME = _env("CLINIC_NAME", "SpineConsult Clinic")
    CLINIC_TIMEZONE = _env("CLINIC_TIMEZONE", "Europe/Berlin")
    # Whether the clinic chose its zone (production warns when it did not: booking/__init__.py).
    CLINIC_TIMEZONE_SET = _env("CLINIC_TIMEZONE") is not None
    CLINIC_PHONE = _env("CLINIC_PHONE", "")
    CLINIC_ADDRESS = _env("CLINIC_ADDRESS", "")
    # Shown on the home page in the reader's language (booking.openinghours); lines separated
    # by "|", each English three-letter days then 24-hour hours or "closed", e.g.
    # "Mon-Fri 8:00-17:00|Sat, Sun closed". The app refuses to start with one it cannot read.
    CLINIC_OPENING_HOURS = _env("CLINIC_OPENING_HOURS", "")
    # The number patients with red-flag symptoms are told to call: the clinic's region's.
    EMERGENCY_NUMBER = _env("EMERGENCY_NUMBER", "112")
    # Whether the clinic set EMERGENCY_NUMBER (112 may be the default, not a choice): the
    # app warns at start-up when neither it nor EMERGENCY_NUMBERS is set.
    EMERGENCY_NUMBER_SET = _env("EMERGENCY_NUMBER") is not None
    # The same by the reader's language, where readers of one language may live elsewhere
    # (e.g. "en:112,es:112"; a clinic serving Latin America sets "es:911"); a language not
    # listed gets EMERGENCY_NUMBER. Read by booking.requests.triage.emergency_number.
    EMERGENCY_NUMBERS = _env_map("EMERGENCY_NUMBERS")
    # The out-of-hours medical line patients are told to call with other worries when the
    # clinic is closed (116 117 in Germany, 111 in England); empty: "call your family doctor
    # or the out-of-hours service".
    OUT_OF_HOURS_NUMBER = _env("OUT_OF_HOURS_NUMBER", "")
    # Who wrote and who clinically reviewed the information pages (shown on each page, with
    # the review dates of booking/content/reviews.py): "Name, role".
    CONTENT_AUTHOR = _env("CONTENT_AUTHOR", "")
    CONTENT_REVIEWER = _env("CONTENT_REVIEWER", "")
    # Feedback on an information page ("was this useful / report a problem") per address.
    FEEDBACK_RATE_LIMIT = _env("FEEDBACK_RATE_LIMIT", "5 per minute; 30 per day")
    # Phone numbers typed without a country code are read as numbers of this region.
    DEFAULT_PHONE_REGION = _env("DEFAULT_PHONE_REGION", "DE")
    STAFF_NOTIFICATION_EMAIL = _env("STAFF_NOTIFICATION_EMAIL", "clinic@example.com")
    # Absolute address of the site, used for links in emails (the worker has no request).
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    # The private link in each patient email (booking.requests.links) works while the request is
    # open, until this many days after its appointment; a closed request's page is read-only
    # and its links die this many days after the closing.
    MANAGE_LINK_DAYS_AFTER_APPOINTMENT = _env_int("MANAGE_LINK_DAYS_AFTER_APPOINTMENT", 30)
    MANAGE_LINK_DAYS_AFTER_CLOSE = _env_int("MANAGE_LINK_DAYS_AFTER_CLOSE", 30)
    # Opening a link leaves a cookie for that request's pages, valid this long after the last
    # page the patient opened; then the link from the email opens them again.
    MANAGE_COOKIE_MINUTES = _env_int("MANAGE_COOKIE_MINUTES", 60)
    # Links of the older, signed kind (sent before 2026-12) work this long after they were sent.
    MANAGE_LINK_DAYS = _env_int("MANAGE_LINK_DAYS", 120)
    MANAGE_RATE_LIMIT = _env("MANAGE_RATE_LIMIT", "60 per minute")
    # A freed time is offered to the waiting list in waves (booking.requests.waitlist): this
    # many patients at a time, most urgent first, the next ones this many minutes later if
    # nobody has taken it.
    WAITLIST_WAVE_SIZE = _env_int("WAITLIST_WAVE_SIZE", 5)
    WAITLIST_WAVE_MINUTES = _env_int("WAITLIST_WAVE_MINUTES", 60)
    # No next wave goes out in these clinic hours (may cross midnight or end at 24:00; empty:
    # none), so a time freed in the evening is not emailed down the list while the first
    # patients sleep.
    WAITLIST_QUIET_HOURS = _env("WAITLIST_QUIET_HOURS", "21:00-08:00")
    # Hours before an appointment at which reminders go out.
    REMINDER_LEAD_HOURS = [
        int(h) for h in (_env("REMINDER_LEAD_HOURS", "48,2") or "").split(",") if h.strip()
    ]
    # Follow-through on emergency and urgent requests (README, "Call-backs"): staff must
    # acknowledge (log a call to) an emergency request within this many minutes, and an
    # urgent one within this many working hours (the clinic's hours below); a request of either
    # kind past its target is escalated by one email to ON_CALL_EMAIL (default:
    # STAFF_NOTIFICATION_EMAIL).
    EMERGENCY_TARGET_MINUTES = _env_int("EMERGENCY_TARGET_MINUTES", 30)
    URGENT_TARGET_WORKING_HOURS = _env_float("URGENT_TARGET_WORKING_HOURS", 4)
    ON_CALL_EMAIL = _env("ON_CALL_EMAIL")
    # The clinic's working hours for the urgent target, clinic time: the days (0 = Monday, as
    # in the specialists' hours) and one opening time per day ("00:00-24:00": all day, 24:00
    # being midnight); closed on the public holidays of CLINIC_HOLIDAYS (a country's ISO code,
    # a dash and a subdivision's, e.g. "DE-BE" for Berlin; empty: none), on the ISO dates of
    # CLINIC_CLOSED_DAYS (comma-separated) and on the days an admin closes in the app.
    CLINIC_WORKING_DAYS = [
        int(d) for d in (_env("CLINIC_WORKING_DAYS", "0,1,2,3,4") or "").split(",") if d.strip()
    ]
    CLINIC_WORKING_HOURS = _env("CLINIC_WORKING_HOURS", "08:00-18:00")
    CLINIC_HOLIDAYS = _env("CLINIC_HOLIDAYS", "") or ""
    CLINIC_CLOSED_DAYS = _env("CLINIC_CLOSED_DAYS", "") or ""
    PRIVACY_NOTICE_VERSION = _env("PRIVACY_NOTICE_VERSION", "2026-12-05")
    # The wording of the optional consent to follow-up questionnaires (booking.outcomes): a
    # request records the version its patient agreed to.
    FOLLOWUP_CONSENT_VERSION = _env("FOLLOWUP_CONSENT_VERSION", "2026-12-05")
    # A follow-up questionnaire's link works this many days after it was sent; one reminder
    # goes out this many days after the invitation if it is still unanswered.
    FOLLOWUP_LINK_DAYS = _env_int("FOLLOWUP_LINK_DAYS", 30)
    FOLLOWUP_REMINDER_DAYS = _env_int("FOLLOWUP_REMINDER_DAYS", 7)
    # Who the privacy notice names (booking/templates/patients/_privacy_notice.html): the
    # controller (default: the clinic's name and address), where patients write about their
    # data, the data-protection officer, the supervisory authority they may complain to, and
    # the processors that handle the data for the clinic. Raise PRIVACY_NOTICE_VERSION when
    # any of them changes; docs/data-protection.md lists what each must say.
    PRIVACY_CONTROLLER_NAME = _env("PRIVACY_CONTROLLER_NAME")
    PRIVACY_CONTROLLER_ADDRESS = _env("PRIVACY_CONTROLLER_ADDRESS")
    PRIVACY_CONTACT_EMAIL = _env("PRIVACY_CONTACT_EMAIL", "")
    DPO_CONTACT = _env("DPO_CONTACT", "")
    SUPERVISORY_AUTHORITY = _env("SUPERVISORY_AUTHORITY", "")
    SUPERVISORY_AUTHORITY_CONTACT = _env("SUPERVISORY_AUTHORITY_CONTACT", "")
    # The national law that, with GDPR Art. 9(2)(h), allows processing health data for care.
    HEALTH_DATA_LAW = _env("HEALTH_DATA_LAW", "")
    PROCESSOR_EMAIL = _env("PROCESSOR_EMAIL", "")
    PROCESSOR_HOSTING = _env("PROCESSOR_HOSTING", "")
    # A patient may download a copy of their data from their private link this often (it
    # also needs their date of birth: the limit slows guessing it), per request. The day's cap
    # keeps a year of possible dates (about 365) from being tried in a few days.
    PATIENT_EXPORT_RATE_LIMIT = _env("PATIENT_EXPORT_RATE_LIMIT", "5 per hour; 10 per day")
    # Closed requests (completed, declined, cancelled, no-show) and their documents are deleted
    # this many days after their last change, by a nightly task. The default, 10 years, is the
    # German duty to keep patient records (BGB 630f); check the rule where the clinic works.
    # 3653 days, not 3650: ten calendar years hold two or three leap days, and a record must
    # not go before the ten years are over. 0 turns retention off.
    RETENTION_DAYS = _env_int("RETENTION_DAYS", 3653)
    # The audit trail is kept; after this many days the staff email addresses, the addresses
    # typed at failed sign-ins and the network addresses in its rows are reduced to a staff
    # id or a hash, by the nightly retention job (0: never).
    AUDIT_ADDRESS_DAYS = _env_int("AUDIT_ADDRESS_DAYS", 365)
    # Feedback on the information pages ("was this page useful", comments that may hold what
    # a reader typed about themselves) is deleted this many days after it was sent, by the
    # nightly retention job (0: kept).
    FEEDBACK_RETENTION_DAYS = _env_int("FEEDBACK_RETENTION_DAYS", 365)
    # Unusual access: the admins are emailed (once per account and hour, and it is audited)
    # when one account opens more than this many requests' records in an hour, or exports
    # more than this many requests at once (0 turns each alert off).
    ACCESS_ALERT_RECORDS_PER_HOUR = _env_int("ACCESS_ALERT_RECORDS_PER_HOUR", 100)
    ACCESS_ALERT_EXPORT_ROWS = _env_int("ACCESS_ALERT_EXPORT_ROWS", 500)
    # What separates the queue's CSV export's cells: "," or, for spreadsheets set to a
    # language whose decimal mark is a comma (German, Spanish, French), ";"; or "tab".
    EXPORT_CSV_DELIMITER = _env("EXPORT_CSV_DELIMITER", ",")

    MAIL_SERVER = _env("MAIL_SERVER", "127.0.0.1")
    MAIL_PORT = _env_int("MAIL_PORT", 1025)
    MAIL_USE_TLS = _env_bool("MAIL_USE_TLS", False)
    MAIL_USE_SSL = _env_bool("MAIL_USE_SSL", False)
    MAIL_USERNAME = _env("MAIL_USERNAME")
    MAIL_PASSWORD = _env("MAIL_PASSWORD")
    # Flask-Mail would otherwise follow DEBUG and print whole messages (addresses, bodies).
    MAIL_DEBUG = False
    # Not set: CLINIC_NAME at EXAMPLE_SENDER_ADDRESS (``default_sender``, by create_app, which
    # knows the CLINIC_NAME a test or a clinic gave), so the From's name is the signature's.
    MAIL_DEFAULT_SENDER = _env("MAIL_DEFAULT_SENDER")
    # Where a patient's reply goes (the clinic's front desk), when the sender is a no-reply
    # address; unset: no Reply-To header, replies go to the sender.
    MAIL_REPLY_TO = _env("MAIL_REPLY_TO")
    # Seconds before a silent mail server counts as down (Flask-Mail sets no timeout itself).
    MAIL_TIMEOUT = _env_int("MAIL_TIMEOUT", 30)
    # An email the mail server did not take for a reason that may pass (the server down or
    # not answering, a 4xx, a refusal of the clinic's own settings such as its login) is
    # tried again, the waits doubling from MAIL_RETRY_BASE_SECONDS up to an hour, until it
    # has waited this many hours since it was written; then it fails for good and staff see
    # it. By age, not by a count of attempts: 12 attempts ran out after about five hours, so
    # a mail server away for an evening failed every email, each to be sent again by hand.
    # 72 hours carry a long weekend; past them most emails are outdated anyway. A refusal
    # of the email itself (a 5xx about its recipient or content) fails it at once.
    MAIL_GIVE_UP_HOURS = _env_int("MAIL_GIVE_UP_HOURS", 72)
    # MAIL_MAX_ATTEMPTS, which it replaces, is no longer read: start-up warns while it is set.
    MAIL_MAX_ATTEMPTS_SET = _env("MAIL_MAX_ATTEMPTS") is not None
    MAIL_RETRY_BASE_SECONDS = _env_int("MAIL_RETRY_BASE_SECONDS", 30)
    # A pending email whose task is this late was lost (queue down): the sweep enqueues it again.
    MAIL_REQUEUE_AFTER_SECONDS = _env_int("MAIL_REQUEUE_AFTER_SECONDS", 180)
    # A worker that claimed an email this long ago and never finished died: release the email.
    MAIL_CLAIM_TIMEOUT_SECONDS = _env_int("MAIL_CLAIM_TIMEOUT_SECONDS", 600)
    # An email whose worker never finished this many claims of it in a row (killed, hung or
    # broken by it each time: one it cannot read or build) fails for good, where staff see
    # it, instead of killing workers until MAIL_GIVE_UP_HOURS. Any attempt that ends (sent,
    # or refused and retried) starts the count again, so worker restarts during an outage of
    # the mail server fail nothing. From its second lapse an email is retried alone, so the
    # emails a killed worker was sending alongside it are not failed with it: keep it >= 3.
    MAIL_MAX_LAPSED_CLAIMS = _env_int("MAIL_MAX_LAPSED_CLAIMS", 3)

    # Readiness (/health/ready) looks for a worker heartbeat at most this old. Workers write one
    # at start-up and every minute (through the queue, so a long backlog delays it too); 0
    # leaves the workers out of readiness.
    HEALTH_HEARTBEAT_MAX_AGE_SECONDS = _env_int("HEALTH_HEARTBEAT_MAX_AGE_SECONDS", 300)
    # Whether the task queue's storage (Redis) and that heartbeat fail readiness. Off: they are
    # named under "degraded" and the server stays ready, since it still stores every request
    # (the emails wait in the outbox) and the queue is shared: failing readiness for it would
    # take every app server out of the load balancer at once.
    HEALTH_QUEUE_REQUIRED = _env_bool("HEALTH_QUEUE_REQUIRED", False)
    # Readiness reports the outbox as degraded (never failing) while an email has waited
    # longer than this since it was written, or one failed for good in the last day; 0
    # leaves the outbox out. 15 minutes: about five attempts' back-off.
    HEALTH_OUTBOX_MAX_AGE_SECONDS = _env_int("HEALTH_OUTBOX_MAX_AGE_SECONDS", 900)
    # An alert to the clinic about an emergency or urgent request (a new one, a call-back, a
    # raise, an escalation) not delivered this long after it was written is shown on the
    # queue, as one that failed: the retries take days to run out, and with the workers down
    # an email is never tried, while staff believe they would have heard.
    ALERT_LATE_MINUTES = _env_int("ALERT_LATE_MINUTES", 10)
    # Any email (a patient's confirmation, a reschedule, ...) still waiting this long after it
    # was written, or failed for good in the last day, is counted on a banner on every staff
    # page of coordinators and admins: with the worker stopped or its queue down, emails
    # wait silently. 0 shows no banner.
    MAIL_LATE_MINUTES = _env_int("MAIL_LATE_MINUTES", 30)

    # Pages the same for every patient (the request form, the time picker) are rendered once
    # per server process and reused for at most this long, and never after what they show
    # changed (booking.pagecache); 0 renders every time.
    PAGE_CACHE_SECONDS = _env_int("PAGE_CACHE_SECONDS", 60)
    PAGE_CACHE_ENTRIES = _env_int("PAGE_CACHE_ENTRIES", 500)
    # How often a server process asks the database whether what patients can book changed
    # (booking.scheduling.versions): a change made through another server shows on this one's
    # cached pages at most this late (its own changes show at once); 0 asks on every page.
    AVAILABILITY_RECHECK_SECONDS = _env_float("AVAILABILITY_RECHECK_SECONDS", 1.0)

    # Production's start-up checks (booking.create_app): refuse a published or short key, and
    # warn of rate limits counted per process and a PUBLIC_BASE_URL that is not https.
    PRODUCTION_CHECKS = False

    # Maildir written by the development SMTP sink and listed at /dev/mail.
    DEV_MAILDIR = _env("DEV_MAILDIR", str(INSTANCE_DIR / "mail"))
    DEV_MAIL_VIEWER = False
    # `flask seed-demo` makes staff accounts with passwords published in README.
    DEMO_DATA_ALLOWED = False

    # Patient pages and emails; staff pages stay in English.
    LANGUAGES = ["en", "es"]
    BABEL_DEFAULT_LOCALE = "en"
    BABEL_TRANSLATION_DIRECTORIES = "translations"

    BOOTSTRAP_SERVE_LOCAL = True
    WTF_CSRF_TIME_LIMIT = 3 * 60 * 60  # a long form may take a patient in pain a while
    # Flask-WTF's strict HTTPS check demands a same-origin Referer; booking.security checks
    # Origin / Sec-Fetch-Site instead (the token check stays on).
    WTF_CSRF_SSL_STRICT = False

    # Staff sign-in: a session ends after this many idle minutes, and this many hours after
    # signing in however busy (both kept on the server: booking.staff.auth); reset links expire.
    STAFF_IDLE_MINUTES = _env_int("STAFF_IDLE_MINUTES", 30)
    STAFF_SESSION_HOURS = _env_int("STAFF_SESSION_HOURS", 12)
    PASSWORD_RESET_HOURS = _env_int("PASSWORD_RESET_HOURS", 2)
    LOGIN_RATE_LIMIT = _env("LOGIN_RATE_LIMIT", "10 per minute; 50 per hour")
    # Staff passwords and recovery codes are hashed with argon2id at this cost: argon2-cffi's
    # defaults (RFC 9106's low-memory profile: 3 passes over 64 MiB, 4 lanes). Hashes made at
    # another cost still verify, and are rehashed at this one when their owner next signs in.
    PASSWORD_HASH_TIME_COST = 3
    PASSWORD_HASH_MEMORY_COST = 64 * 1024  # KiB
    PASSWORD_HASH_PARALLELISM = 4
    # Failed sign-ins (and two-factor codes) per account, from any address: slows guessing
    # spread over many addresses; the window passes, so it never locks an account for good.
    LOGIN_ACCOUNT_RATE_LIMIT = _env("LOGIN_ACCOUNT_RATE_LIMIT", "10 per 15 minutes")
    TWO_FACTOR_ACCOUNT_RATE_LIMIT = _env("TWO_FACTOR_ACCOUNT_RATE_LIMIT", "5 per 15 minutes")
    # Password resets asked for one address (an account's or not), from any network address:
    # many addresses cannot flood a staff inbox with reset emails.
    PASSWORD_RESET_ACCOUNT_RATE_LIMIT = _env("PASSWORD_RESET_ACCOUNT_RATE_LIMIT", "3 per hour")
    # Request submissions per address (a clinic's waiting room may share one address).
    SUBMIT_RATE_LIMIT = _env("SUBMIT_RATE_LIMIT", "10 per minute; 60 per hour")
    # "Finish later" emails sent to one email address, from any network address and any
    # draft: a new draft each time (another browser, another network) cannot make the
    # clinic send its emails to someone's inbox again and again.
    RESUME_EMAIL_ADDRESS_RATE_LIMIT = _env(
        "RESUME_EMAIL_ADDRESS_RATE_LIMIT", "5 per hour; 20 per day"
    )
    # Request confirmations emailed to one email address, from any network address: anyone
    # can type someone else's address into request after request. A patient sends one or two
    # (three, with a correction), a parent one per child: far below. Past it only the email
    # is held back; the request is always stored, the clinic told, the confirmation page
    # shown, and the request's timeline says so.
    REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT = _env(
        "REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT", "5 per hour; 20 per day"
    )
    # Links to confirm a new email address, emailed from one request's private page, and
    # to one new address (each limit on its own): a patient asks once, twice with a typo.
    EMAIL_CHANGE_RATE_LIMIT = _env("EMAIL_CHANGE_RATE_LIMIT", "3 per hour; 10 per day")
    # Posts to the documents step per address: each file goes up on its own (with scripts),
    # and removing one or moving on posts too. Without it anyone could fill the disk (and
    # keep the virus scanner busy) with drafts of ten 20 MB files each.
    UPLOAD_RATE_LIMIT = _env("UPLOAD_RATE_LIMIT", "30 per minute; 120 per hour")
    # Flask-Limiter: counts live in Redis when it is configured, else in memory.
    RATELIMIT_STORAGE_URI = _env("RATELIMIT_STORAGE_URI", REDIS_URL or "memory://")
    # Redis away: each process counts in memory until it is back (Flask-Limiter checks), so
    # the limits still hold per process and a patient's request is not a 500 meanwhile.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    # Seconds to connect to the counts' Redis, and for each answer, unless the URI says
    # otherwise (its own socket_connect_timeout / socket_timeout win). redis-py waits for ever
    # by default: a Redis gone without a trace (not refusing) would hold every page with a
    # limit instead of falling back to memory. Ignored by the memory storage.
    RATELIMIT_STORAGE_OPTIONS = {"socket_connect_timeout": 5, "socket_timeout": 5}
    # The fallback only covers the check before a view. A limit counted after it (a failed
    # sign-in or two-factor code, a patient's copy of their data: ``deduct_when``) meets a
    # Redis that went away during the request in an after-request hook: without this, a 500
    # page for a sign-in that was answered. Logged, that one count is lost; the next request
    # finds Redis down and counts in memory. Flask-Limiter's one limiter object keeps the
    # first app's choice, so every settings class says it (they all inherit this one).
    RATELIMIT_SWALLOW_ERRORS = True
    # Said, not left out: Flask-Limiter's one limiter object keeps the last app's choice, and
    # an app whose settings say nothing would inherit a test app's "off".
    RATELIMIT_ENABLED = True
    RATELIMIT_HEADERS_ENABLED = True

    # Behind a TLS-terminating proxy: how many proxies' X-Forwarded-* headers to trust.
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)
    # Redirect http to https and send HSTS (production turns both on).
    FORCE_HTTPS = _env_bool("FORCE_HTTPS", False)
    # Every page: only our own scripts, styles and images; never framed.
    CONTENT_SECURITY_POLICY = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self' data:",
        "font-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }

    # Roles that must sign in with a second factor (TOTP); "all" for every account.
    STAFF_2FA_REQUIRED_ROLES = [
        r.strip() for r in (_env("STAFF_2FA_REQUIRED_ROLES", "admin") or "").split(",") if r.strip()
    ]

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"


class DevelopmentConfig(Config):
    DEBUG = True
    SECRET_KEY = _env("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
    # Development only, published: documents in instance/ are demo data.
    ENCRYPTION_KEY = _env("ENCRYPTION_KEY", DEVELOPMENT_ENCRYPTION_KEY)
    DEV_MAIL_VIEWER = True
    DEMO_DATA_ALLOWED = True
    CLAMAV_ENABLED = _env_bool("CLAMAV_ENABLED", False)
    # A demo clinic's card for the home page (`make run`): a patient looks there for a phone.
    CLINIC_PHONE = _env("CLINIC_PHONE", "+49 30 1234 5678")
    CLINIC_ADDRESS = _env("CLINIC_ADDRESS", "Friedrichstraße 100, 10117 Berlin")
    CLINIC_OPENING_HOURS = _env(
        "CLINIC_OPENING_HOURS", "Mon-Fri 8:00-18:00|Sat 9:00-13:00|Sun closed"
    )
    # Demo values: a real clinic names its own author and clinical reviewer.
    OUT_OF_HOURS_NUMBER = _env("OUT_OF_HOURS_NUMBER", "116 117")
    CONTENT_AUTHOR = _env("CONTENT_AUTHOR", "Sam Example, patient information editor")
    CONTENT_REVIEWER = _env("CONTENT_REVIEWER", "Dr Alex Example, consultant spine surgeon")
    # A demo privacy notice (`make run`): a real clinic sets its own (docs/data-protection.md).
    PRIVACY_CONTACT_EMAIL = _env("PRIVACY_CONTACT_EMAIL", "privacy@example.com")
    DPO_CONTACT = _env("DPO_CONTACT", "Dana Example, dpo@example.com")
    SUPERVISORY_AUTHORITY = _env(
        "SUPERVISORY_AUTHORITY", "Berliner Beauftragte für Datenschutz und Informationsfreiheit"
    )
    SUPERVISORY_AUTHORITY_CONTACT = _env(
        "SUPERVISORY_AUTHORITY_CONTACT", "Alt-Moabit 59-61, 10555 Berlin, www.datenschutz-berlin.de"
    )
    HEALTH_DATA_LAW = _env("HEALTH_DATA_LAW", "§ 22(1)(1)(b) BDSG")
    # Names only: the notice says in the reader's language what each does.
    PROCESSOR_EMAIL = _env("PROCESSOR_EMAIL", "Example Mail GmbH, Berlin")
    PROCESSOR_HOSTING = _env("PROCESSOR_HOSTING", "Example Hosting GmbH, Frankfurt")


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = TESTING_SECRET_KEY
    ENCRYPTION_KEY = TESTING_ENCRYPTION_KEY
    SQLALCHEMY_DATABASE_URI = "sqlite://"
    HUEY_BACKEND = "memory"
    DEMO_DATA_ALLOWED = True
    CLAMAV_ENABLED = False  # the scanning tests start a real clamd of their own
    MAIL_SUPPRESS_SEND = False  # tests that deliver mail talk to a real local SMTP server
    MAIL_PORT = 1  # nothing listens here: a test that sends without its own server fails loudly
    RATELIMIT_STORAGE_URI = "memory://"
    LOGIN_RATE_LIMIT = "1000 per minute"  # the rate-limit test sets its own
    LOGIN_ACCOUNT_RATE_LIMIT = "1000 per minute"
    TWO_FACTOR_ACCOUNT_RATE_LIMIT = "1000 per minute"
    PASSWORD_RESET_ACCOUNT_RATE_LIMIT = "1000 per minute"  # noqa: S105 (a rate, no secret)
    SUBMIT_RATE_LIMIT = "1000 per minute"
    RESUME_EMAIL_ADDRESS_RATE_LIMIT = "1000 per minute"
    REQUEST_CONFIRMATION_ADDRESS_RATE_LIMIT = "1000 per minute"
    EMAIL_CHANGE_RATE_LIMIT = "1000 per minute"
    UPLOAD_RATE_LIMIT = "1000 per minute"
    FEEDBACK_RATE_LIMIT = "1000 per minute"
    # Most tests sign admins in with a password only; the two-factor tests require it.
    STAFF_2FA_REQUIRED_ROLES: list[str] = []
    # Tests change the schedule from other sessions and expect the next page to show it.
    AVAILABILITY_RECHECK_SECONDS = 0.0
    # The suite runs at any hour: the quiet-hours test sets its own.
    WAITLIST_QUIET_HOURS = ""
    # Argon2 at its cheapest (as cookiecutter-flask's BCRYPT_LOG_ROUNDS = 4): the full cost
    # takes about half a second per password, and the tests make hundreds of accounts.
    PASSWORD_HASH_TIME_COST = 1
    PASSWORD_HASH_MEMORY_COST = 8  # KiB: argon2's minimum, 8 per lane
    PASSWORD_HASH_PARALLELISM = 1


class ProductionConfig(Config):
    # Flask takes DEBUG from FLASK_DEBUG when no setting names it: never in production (the
    # debugger runs code typed into an error page). create_app refuses it if still asked for.
    DEBUG = False
    # No example address for the clinic's alerts: production refuses to start without one.
    STAFF_NOTIFICATION_EMAIL = _env("STAFF_NOTIFICATION_EMAIL")
    SESSION_COOKIE_SECURE = True
    # "__Host-": browsers keep a cookie of that name only when it is Secure, for Path=/ and
    # with no Domain, so only this site can set it. A plain "session" could be set for the
    # whole domain by any site under it (a sibling subdomain), planting its own session: a
    # draft of its making that collects a patient's answers, or a signed-in state. Development
    # and the tests, over plain http, keep "session" (browsers refuse __Host- without Secure).
    SESSION_COOKIE_NAME = "__Host-session"
    SESSION_COOKIE_PATH = "/"
    SESSION_COOKIE_DOMAIN = None
    FORCE_HTTPS = _env_bool("FORCE_HTTPS", True)
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 1)
    PREFERRED_URL_SCHEME = "https"
    # Patients' uploads reach staff computers: production does not start without the scanner.
    CLAMAV_REQUIRED = True
    # The privacy notice names whom to ask and where to complain (GDPR Art. 13): production
    # logs a warning at start-up while these are empty (docs/data-protection.md).
    PRIVACY_SETTINGS_REQUIRED = ("PRIVACY_CONTACT_EMAIL", "SUPERVISORY_AUTHORITY")
    # No published or short key; warnings for per-process rate limits and a plain-http site.
    PRODUCTION_CHECKS = True


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def get_config(name: str | None = None) -> Config:
    """The settings called ``name``; default: ``SPINECONSULT_ENV``, else production."""
    name = name or _env("SPINECONSULT_ENV", "production")
    if name not in CONFIGS:
        raise RuntimeError(f"Unknown SPINECONSULT_ENV {name!r}; use one of {sorted(CONFIGS)}")
    return CONFIGS[name]()  # type: ignore[arg-type]
