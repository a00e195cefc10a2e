"""SpineConsult: online consultation requests for a spine clinic."""

from __future__ import annotations

import logging
import os
from email.utils import getaddresses, parseaddr
from typing import Any

from email_validator import EmailNotValidError
from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import Engine

from booking import (
    forms,
    models,  # noqa: F401  (registers every model with SQLAlchemy)
)
from booking.extensions import (
    babel,
    bootstrap,
    csrf,
    db,
    limiter,
    mail,
    migrate,
    migration_compare_type,
)
from booking.security import LANGUAGE_KEY
from booking.templating import register_template_helpers

log = logging.getLogger(__name__)


def create_app(config: str | dict[str, Any] | None = None) -> Flask:
    """Build the application.

    ``config`` is a settings name (``development``, ``testing``, ``production``; default: the
    ``SPINECONSULT_ENV`` variable) or a dict of overrides applied on top of the testing settings.
    """
    from config import default_sender, get_config

    app = Flask(__name__, instance_relative_config=True)
    if isinstance(config, dict):
        app.config.from_object(get_config("testing"))
        app.config.update(config)
    else:
        app.config.from_object(get_config(config))
    _refuse_bad_settings(app)
    if not app.config.get("MAIL_DEFAULT_SENDER"):
        app.config["MAIL_DEFAULT_SENDER"] = default_sender(app.config["CLINIC_NAME"])
    app.config["BABEL_DEFAULT_TIMEZONE"] = app.config["CLINIC_TIMEZONE"]
    app.config["MAX_CONTENT_LENGTH"] = (
        app.config["MAX_DOCUMENTS"] * app.config["MAX_DOCUMENT_MB"] * 1024 * 1024 + 2 * 1024 * 1024
    )
    # The text of one post (not its files): far above any answer's own limit, so an answer too
    # long gets its field's message with everything kept, not a page about the post's size.
    app.config["MAX_FORM_MEMORY_SIZE"] = 2 * 1024 * 1024

    from booking.logging import init_logging

    # First: every request gets its id before anything (CSRF, the same-origin check) can
    # refuse it, so a refusal's log line and X-Request-ID match the proxy's.
    init_logging(app)
    missing = [
        name for name in app.config.get("PRIVACY_SETTINGS_REQUIRED", ()) if not app.config.get(name)
    ]
    if missing:
        app.logger.warning(
            "the privacy notice is incomplete: set %s (docs/data-protection.md)", ", ".join(missing)
        )
    if app.config.get("MAIL_MAX_ATTEMPTS_SET"):
        app.logger.warning(
            "MAIL_MAX_ATTEMPTS is no longer read: an email is given up by its age, "
            "MAIL_GIVE_UP_HOURS (now %s hours), not by a count of attempts; remove the setting",
            app.config["MAIL_GIVE_UP_HOURS"],
        )
    if app.config.get("PRODUCTION_CHECKS"):
        _warn_of_weak_deployment(app)
    register_extensions(app)
    from booking.urlargs import URL_CONVERTERS

    app.url_map.converters.update(URL_CONVERTERS)  # before any route is added
    register_blueprints(app)
    register_template_helpers(app)

    from booking import documents, requests, scheduling, staff
    from booking.cli import register_commands
    from booking.errors import register_error_handlers
    from booking.rights import monitoring
    from booking.tasks import init_task_queue

    requests.init_app(app)
    scheduling.init_app(app)
    staff.init_app(app)
    monitoring.init_app(app)
    register_error_handlers(app)
    documents.init_app(app)
    register_commands(app)
    init_task_queue(app)
    _audit_infected_uploads(app)
    return app


def _refuse_bad_settings(app: Flask) -> None:
    """Stop before anything starts when a setting is missing or unsafe, naming every such
    setting at once: an operator fixing one per restart would find the next only then.
    Also reads the opening hours and the keys (each says what is wrong with them)."""
    from booking import openinghours
    from booking.crypto import init_keys
    from booking.requests import waitlist

    problems = []
    if not app.config.get("SECRET_KEY"):
        problems.append(
            "SECRET_KEY is not set. Set the SECRET_KEY environment variable to a long random "
            'value, e.g. python -c "import secrets; print(secrets.token_hex(32))".'
        )
    if app.config.get("PRODUCTION_CHECKS"):
        if app.config.get("SECRET_KEY"):
            problems += _published_keys(app)
        problems += _missing_alert_address(app)
        problems += _sqlite_unless_allowed(app)
        problems += _debug(app)
        problems += _missing_translations(app)
    if app.config["CLAMAV_REQUIRED"] and not app.config["CLAMAV_ENABLED"]:
        problems.append(
            "Virus scanning is required in production: install clamav-daemon and leave "
            "CLAMAV_ENABLED on (docs/production.md, 'Virus scanning')."
        )
    if app.config["CLAMAV_WHEN_DOWN"] not in ("refuse", "hold"):
        problems.append("CLAMAV_WHEN_DOWN must be 'refuse' or 'hold'")
    problems += _addresses_not_one_valid_address(app)
    for read in (openinghours.init_app, init_keys, waitlist.init_app):
        try:
            read(app)  # the opening hours and holidays; the keys; the waves' quiet hours
        except RuntimeError as exc:
            problems.append(str(exc))
    if len(problems) == 1:
        raise RuntimeError(problems[0])
    if problems:
        raise RuntimeError(
            f"{len(problems)} settings stop the app from starting:\n- " + "\n- ".join(problems)
        )


# The settings that hold one email address: the senders, and the clinic's own addresses its
# alerts and patients' questions go to. (PROCESSOR_EMAIL names the company that sends the
# emails, and DPO_CONTACT is a name with a way to reach them: text, not an address.)
ADDRESS_SETTINGS = (
    "MAIL_DEFAULT_SENDER",
    "MAIL_REPLY_TO",
    "STAFF_NOTIFICATION_EMAIL",
    "ON_CALL_EMAIL",
    "PRIVACY_CONTACT_EMAIL",
)


def _addresses_not_one_valid_address(app: Flask) -> list[str]:
    """Each address setting, when set, is one valid email address, in every environment. A
    display name with a comma and no quotes (``Klinik X, Orthopädie <praxis@klinik.example>``)
    reads as two, ``Klinik X`` and ``Orthopädie <praxis@...>``: every email would carry two
    From addresses (which mail servers reject) or a Reply-To to a name that is no address,
    and the Message-IDs and calendar events would take a word of the name for the address.
    The clinic's own addresses matter as much: a typo in ON_CALL_EMAIL or
    STAFF_NOTIFICATION_EMAIL (``on-call@clinic``, two addresses with a comma) would send the
    emergency alerts to nobody, each failing only when the worker tries it, and the privacy
    notice would give patients an address that does not work. The address is read by the
    forms' own rule (``forms.check_email_address``: no DNS look-up, no accents before the @,
    which the mail library cannot send to), looked up when called, so a setting passes
    exactly when a form would take the address, now and after any change to the rule. A
    malformed setting, as a wrong CLAMAV_WHEN_DOWN: refused, naming the fix. Unset is fine
    (create_app fills in the sender; production refuses an unset STAFF_NOTIFICATION_EMAIL on
    its own)."""
    problems = []
    for name in ADDRESS_SETTINGS:
        value = str(app.config.get(name) or "").strip()
        if not value:
            continue
        addresses = getaddresses([value])
        if len(addresses) > 1:
            read = " and ".join(
                repr(f"{shown} <{address}>" if shown else address) for shown, address in addresses
            )
            what = f"reads as {len(addresses)} addresses, {read}"
        else:
            address = addresses[0][1] if addresses else ""
            if "@" not in address:
                what = "holds no address (name@domain)"
            else:
                try:
                    forms.check_email_address(address)
                    continue
                except EmailNotValidError as exc:
                    what = f"is no valid address ({exc})"
        problems.append(
            f"{name} must be one email address, but {value!r} {what}. A name with a comma, "
            'quotes or brackets goes in double quotes: "Klinik X, Orthopädie" '
            "<praxis@klinik.example>; to reach several people, give the address of a shared "
            "mailbox or a mailing list (README, 'Settings')."
        )
    return problems


def _published_keys(app: Flask) -> list[str]:
    """Production never runs on a key published in config.py (development's or the tests'):
    with it anyone could sign sessions, CSRF tokens and the older signed manage links, or
    read what it encrypted. A short SECRET_KEY is refused as guessable."""
    problems = []
    from booking.crypto import parse_key
    from config import MIN_SECRET_KEY_LENGTH, PUBLISHED_ENCRYPTION_KEYS, PUBLISHED_SECRET_KEYS

    how = '(e.g. python -c "import secrets; print(secrets.token_hex(32))")'
    secret = str(app.config["SECRET_KEY"])
    if secret in PUBLISHED_SECRET_KEYS:
        problems.append(
            "SECRET_KEY is a value published in config.py (development or tests): anyone can "
            f"forge sessions and links with it. Set a long random SECRET_KEY {how}."
        )
    if len(secret) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            f"SECRET_KEY is too short ({len(secret)} characters): production needs at least "
            f"{MIN_SECRET_KEY_LENGTH} random characters {how}."
        )

    def key_bytes(text: str) -> bytes | str:
        try:
            return parse_key(text)
        except ValueError:
            return text  # malformed: init_keys says so

    encryption_key = app.config.get("ENCRYPTION_KEY")
    if encryption_key and key_bytes(encryption_key) in {
        key_bytes(key) for key in PUBLISHED_ENCRYPTION_KEYS
    }:
        problems.append(
            "ENCRYPTION_KEY is a key published in config.py (development or tests): anyone can "
            "decrypt what it encrypts. Make one with `flask --app wsgi keys new`; if data was "
            "already encrypted with the published key, put that in ENCRYPTION_OLD_KEYS and run "
            "`flask --app wsgi keys rotate` (README, 'Encryption keys')."
        )
    return problems


def _missing_alert_address(app: Flask) -> list[str]:
    """Production never starts with the clinic's alerts going nowhere: every new request,
    every urgent one and every emergency call-back's escalation is emailed to this address,
    which has no default there (development's and the tests' is an example.com one)."""
    problems = []
    if not str(app.config.get("STAFF_NOTIFICATION_EMAIL") or "").strip():
        problems.append(
            "STAFF_NOTIFICATION_EMAIL is not set: the clinic's alerts (new and urgent "
            "requests, emergency call-backs, escalations) would reach nobody. Set it to an "
            "address the clinic reads (README, 'Settings')."
        )
    return problems


def _sqlite_unless_allowed(app: Flask) -> list[str]:
    """Production never falls back silently on a SQLite file (DATABASE_URL unset gives one
    in instance/): it holds the patients' data on one machine, outside the PostgreSQL
    backups, and serialises every writer. A single-machine install that means it says so."""
    problems = []
    url = str(app.config.get("SQLALCHEMY_DATABASE_URI") or "")
    if url.startswith("sqlite") and not app.config.get("ALLOW_SQLITE_IN_PRODUCTION"):
        problems.append(
            "DATABASE_URL is a SQLite database (or not set, which means a file in instance/): "
            "production runs on PostgreSQL. Set DATABASE_URL to it (docs/production.md); to "
            "run on SQLite on purpose, set ALLOW_SQLITE_IN_PRODUCTION=1 (README, 'Settings')."
        )
    return problems


def _debug(app: Flask) -> list[str]:
    """Production never runs in debug mode: the Werkzeug debugger runs any code typed into
    an error page, and errors would escape the app's own handling and logging. FLASK_DEBUG
    (or ``flask run --debug``) is refused, not ignored: the command line's Flask would still
    turn the debugger on after this app is made."""
    problems = []
    from flask.helpers import get_debug_flag

    if app.debug or get_debug_flag():
        problems.append(
            "Debug mode is on (FLASK_DEBUG or --debug): production never runs with the "
            "debugger. Unset FLASK_DEBUG."
        )
    return problems


def _missing_translations(app: Flask) -> list[str]:
    """Production never starts without a language's compiled catalogue: the .mo files are
    built from the .po files (`make install`, or `pybabel compile` on a server), not kept in
    git, and without one Flask-Babel falls back to English silently: a Spanish reader would
    get English pages, emergency advice included."""
    problems = []
    directories = [
        os.path.join(app.root_path, folder)
        for folder in str(app.config["BABEL_TRANSLATION_DIRECTORIES"]).split(";")
    ]
    missing = [
        language
        for language in app.config["LANGUAGES"]
        if language != app.config["BABEL_DEFAULT_LOCALE"]
        and not any(
            os.path.isfile(os.path.join(folder, language, "LC_MESSAGES", "messages.mo"))
            for folder in directories
        )
    ]
    if missing:
        problems.append(
            f"The translations of {', '.join(missing)} are not compiled: readers of "
            f"{'those languages' if len(missing) > 1 else 'that language'} would get English "
            "pages, emergency advice included. Run `pybabel compile -d booking/translations` "
            "(part of `make install`) when installing (docs/production.md)."
        )
    return problems


def _warn_of_weak_deployment(app: Flask) -> None:
    """Settings production runs with but should not: logged once at start-up."""
    from config import EXAMPLE_SENDER_ADDRESS

    if str(app.config.get("RATELIMIT_STORAGE_URI", "")).startswith("memory://"):
        app.logger.warning(
            "rate limits are counted in each server process's memory "
            "(RATELIMIT_STORAGE_URI=memory://): with several gunicorn workers or machines "
            "every limit is multiplied by their number; set REDIS_URL (README, 'Settings')"
        )
    if app.config.get("HUEY_BACKEND") == "sqlite":
        app.logger.warning(
            "the task queue is a SQLite file on this machine (REDIS_URL is not set): app "
            "servers and workers on other machines would not share it; set REDIS_URL unless "
            "everything runs on this one machine"
        )
    sender = app.config.get("MAIL_DEFAULT_SENDER") or ""
    if parseaddr(sender)[1] == EXAMPLE_SENDER_ADDRESS:
        app.logger.warning(
            "MAIL_DEFAULT_SENDER is not set, or is at the example address: patients' emails "
            "would come from %s, which mail servers reject or mark as spam; set the clinic's "
            "own sender (README, 'Settings')",
            sender,
        )
    if not app.config.get("EMERGENCY_NUMBER_SET") and not app.config.get("EMERGENCY_NUMBERS"):
        app.logger.warning(
            "EMERGENCY_NUMBER is not set: patients with urgent symptoms are told to call %s "
            "(the European emergency number); set the number of the clinic's region, and "
            "EMERGENCY_NUMBERS where readers of a language live elsewhere (README, 'Settings')",
            app.config.get("EMERGENCY_NUMBER"),
        )
    if not str(app.config.get("CLINIC_PHONE") or "").strip():
        app.logger.warning(
            "CLINIC_PHONE is not set: the pages and emails that tell patients to call the "
            "clinic (a follow-up answered much worse, a change refused online, the emergency "
            "page's 'if you are not sure, call us') give no number; set it (README, 'Settings')"
        )
    if not app.config.get("CLINIC_TIMEZONE_SET"):
        app.logger.warning(
            "CLINIC_TIMEZONE is not set: every time is shown and counted in %s (the call-back "
            "targets, reminders, the opening hours); set the clinic's zone (README, 'Settings')",
            app.config.get("CLINIC_TIMEZONE"),
        )
    if not str(app.config.get("CLINIC_HOLIDAYS") or "").strip():
        app.logger.warning(
            "CLINIC_HOLIDAYS is empty: the urgent call-back target counts the clinic's public "
            "holidays as working time, so urgent requests are escalated to the on-call address "
            "on those days; set the region whose holidays it keeps (README, 'Settings')"
        )
    if not str(app.config.get("ON_CALL_EMAIL") or "").strip():
        app.logger.warning(
            "ON_CALL_EMAIL is not set: an emergency or urgent request whose patient nobody "
            "reached in time is escalated to STAFF_NOTIFICATION_EMAIL, the inbox that already "
            "missed it; set the address of the clinician on call (README, 'Settings')"
        )
    if not str(app.config.get("PUBLIC_BASE_URL", "")).lower().startswith("https://"):
        app.logger.warning(
            "PUBLIC_BASE_URL is not an https:// address: the private links in patients' "
            "emails would open the site over plain http; set it to the site's https address"
        )


INFECTED_KEY = "infected_uploads"


def _note_infected_upload(_sender: object, *, signature: str, **_details: object) -> None:
    """The documents layer refused an infected upload: audit it once the request's own
    transaction is over (the service that stored nothing rolled it back)."""
    from flask import g, has_request_context

    if has_request_context():
        g.setdefault(INFECTED_KEY, []).append(signature)


def _audit_infected_uploads(app: Flask) -> None:
    from booking.documents.scanning import upload_infected

    upload_infected.connect(_note_infected_upload)  # once: blinker ignores a second connect

    @app.after_request
    def _record_infected(response: Any) -> Any:
        from flask import g

        signatures = g.pop(INFECTED_KEY, None)
        if not signatures:
            return response
        from booking.audit.services import record

        try:
            db.session.rollback()  # whatever the refused upload's service left is not kept
            for signature in signatures:
                record(
                    "upload_refused_infected",
                    target_type="upload",
                    target_id=request.endpoint,
                    details={"signature": signature[:100]},
                )
            db.session.commit()
        except Exception:  # the patient's page still says why; the log keeps the event
            db.session.rollback()
            log.exception("could not audit an infected upload (%s)", ", ".join(signatures))
        return response


def _select_locale() -> str | None:
    """Staff pages: English. Patient pages: the language the patient chose with the switcher
    (kept in the session), else the browser's preference."""
    from flask import current_app, has_request_context, session

    if not has_request_context():  # CLI commands and the worker use the default
        return None
    if request.path.startswith("/staff"):
        return "en"
    languages = current_app.config["LANGUAGES"]
    chosen = session.get(LANGUAGE_KEY)
    if chosen in languages:
        return chosen
    return request.accept_languages.best_match(languages)


def _remember_language() -> None:
    """``?lang=es`` on any page switches the patient's language and keeps it."""
    from flask import current_app, session

    choice = request.args.get("lang")
    if choice in current_app.config["LANGUAGES"]:
        session[LANGUAGE_KEY] = choice


def register_extensions(app: Flask) -> None:
    from booking.errors import end_sessions_before_responding

    db.init_app(app)
    end_sessions_before_responding(app)  # first of the after-request hooks but the request id's
    migrate.init_app(app, db, compare_type=migration_compare_type)
    mail.init_app(app)
    csrf.init_app(app)
    babel.init_app(app, locale_selector=_select_locale)
    app.before_request(_remember_language)
    bootstrap.init_app(app)
    limiter.init_app(app)
    from booking.security import init_security

    init_security(app)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        proxies = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
    from booking.staff.auth import init_auth

    init_auth(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            _configure_sqlite(db.engine)


def _configure_sqlite(engine: Engine) -> None:
    """Make SQLite behave for concurrent writers.

    pysqlite starts transactions lazily and as DEFERRED, so two writers both read and then one
    fails with "database is locked". Starting every transaction with BEGIN IMMEDIATE takes the
    write lock up front (the other waits for the busy timeout), and foreign keys are enforced.
    """

    from booking.health.checks import PROBE_READ

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()
        # SQLite's own lower() knows only ASCII; searches (ILIKE) must fold "Ö" like PostgreSQL.
        dbapi_connection.create_function("lower", 1, _lower, deterministic=True)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A health probe's read never waits for a writer: deferred, it takes no lock (WAL).
        conn.exec_driver_sql(
            "BEGIN" if conn.get_execution_options().get(PROBE_READ) else "BEGIN IMMEDIATE"
        )


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def register_blueprints(app: Flask) -> None:
    from booking.accounts.views import bp as staff_bp
    from booking.admin.scheduling_views import bp as scheduling_admin_bp
    from booking.admin.views import bp as admin_bp
    from booking.calendar.views import bp as calendar_bp
    from booking.content.views import bp as content_bp
    from booking.dashboard.views import bp as dashboard_bp
    from booking.health.views import bp as health_bp
    from booking.insights.views import bp as insights_bp
    from booking.manage.views import bp as manage_bp
    from booking.outcomes.staff_views import bp as outcomes_staff_bp
    from booking.outcomes.views import bp as outcomes_bp
    from booking.patients.views import bp as patients_bp
    from booking.privacy.views import bp as privacy_bp

    for blueprint in (
        content_bp,
        patients_bp,
        staff_bp,
        dashboard_bp,
        calendar_bp,
        insights_bp,
        admin_bp,
        scheduling_admin_bp,
        privacy_bp,
        manage_bp,
        outcomes_bp,
        outcomes_staff_bp,
        health_bp,
    ):
        app.register_blueprint(blueprint)
    if app.config.get("DEV_MAIL_VIEWER"):
        from booking.dev.views import bp as dev_bp

        app.register_blueprint(dev_bp)
