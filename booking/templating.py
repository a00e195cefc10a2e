"""Generic template filters and globals: display helpers only (labels, ages, sizes, dates), no
queries and no feature's vocabulary (features register their own helpers in their
``init_app``)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlencode

import phonenumbers
from babel import Locale
from babel.units import format_unit
from flask import Flask, current_app, request, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from markupsafe import Markup, escape
from werkzeug.routing import BuildError

from booking.timeutil import clinic_date, clinic_dt, clinic_today, clinic_zone_name, clock_text


def choice_label(pairs: Sequence[tuple[str, Any]], code: str | None) -> str:
    for value, label in pairs:
        if value == code:
            return str(label)
    return code or ""


def choice_labels(pairs: Sequence[tuple[str, Any]], codes: Iterable[str] | None) -> str:
    return ", ".join(choice_label(pairs, code) for code in codes or [])


def isolated(name: str) -> Markup:
    """A name someone typed, escaped, in a ``<bdi>``: one in a right-to-left script would
    otherwise take the punctuation and the digits beside it into its run ("<name> (12)")."""
    return Markup("<bdi>{}</bdi>").format(name)


def naming(text: str, **values: object) -> Markup:
    """A translated sentence whose placeholders are not filled yet (``_("... %(name)s")``)
    with ``values`` put in: the words escaped, an ``isolated`` name's markup kept (a
    translation is text, not markup)."""
    return escape(text) % values


def message_of(exc: BaseException) -> str:
    """What a refusal says, for a flash or a form's error: the ``naming`` markup a service
    raised it with (an ``isolated`` name) kept as markup; ``str(exc)`` would make it text,
    escaped again when shown (the ``<bdi>`` on the page as characters)."""
    message = exc.args[0] if len(exc.args) == 1 else None
    return message if isinstance(message, Markup) else str(exc)


def unfilled(*names: str) -> dict[str, str]:
    """The placeholders ``names`` as themselves (``{"name": "%(name)s"}``), for ``ngettext``
    to leave for ``naming``: ngettext fills every placeholder of the sentence it chooses at
    once, as text (``naming(ngettext(..., n, **unfilled("name")), name=isolated(...))``). The
    sentence is not to have a ``%%``, which the first filling makes a lone ``%``."""
    return {name: f"%({name})s" for name in names}


def yes_no(value: bool) -> str:
    return _("Yes") if value else _("No")


def age(born: date) -> int:
    today = clinic_today()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def filesize(size: int) -> str:
    """A file's size as the reader's language writes it ("193 kB", "1,5 MB" in Spanish)."""
    locale = get_locale() or "en"
    if size < 1024 * 1024:
        return format_unit(max(1, round(size / 1024)), "digital-kilobyte", "short", locale=locale)
    megabytes = size / (1024 * 1024)
    return format_unit(megabytes, "digital-megabyte", "short", format="#,##0.0", locale=locale)


def phone_number(value: str | None) -> str:
    """A stored phone number (E.164, "+4915123456789") as people read it, in groups:
    "+49 151 23456789". Anything that does not read as a number is shown as stored. A
    ``tel:`` link keeps the stored value."""
    if not value:
        return ""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return value
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


LANGUAGE_NAMES = {"en": "English", "es": "Español"}


def language_name(code: str | None) -> str:
    """A language code ("es") named in the reader's language ("Spanish")."""
    if not code:
        return ""
    try:
        return Locale.parse(code).get_display_name(get_locale() or "en") or code
    except (ValueError, TypeError):
        return code


def switch_language_url(code: str) -> str:
    """This page in another language (GET pages keep their arguments).

    Only the address's own arguments are passed on: a query argument named as one of the
    page's (``?reference=``) or as one of ``url_for``'s own (``?endpoint=``, ``?_anchor=``,
    ``?_external=``) would otherwise fail every page of a link anyone can write, or steer
    the switcher's address."""
    view_args = request.view_args or {}
    args = {
        key: value
        for key, value in request.args.items()
        if key not in view_args and key != "endpoint" and not key.startswith("_")
    }
    args["lang"] = code
    if request.method == "GET" and request.endpoint:
        try:
            return url_for(request.endpoint, **view_args, **args)
        except BuildError:
            pass
    return f"{request.path}?{urlencode({'lang': code})}"


NOTHING = "\u2013"  # the en dash the pages show for "none"


# A date and time as ``isoformat`` writes it into stored details ("2026-12-09T09:00:00+00:00").
ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})")


# A day alone ("2026-12-04") and a clinic wall-clock time ("09:00:00") as stored.
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
WALL_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?")


def _readable_day_or_time(value: date | str) -> str | None:
    """A stored day as the pages show dates ("4 Dec 2026"), a wall-clock time as they show
    times ("09:00"), or None when it is neither."""
    if isinstance(value, datetime):
        return None
    if isinstance(value, date):
        return clinic_date(value)
    try:
        if ISO_DATE.fullmatch(value):
            return clinic_date(date.fromisoformat(value))
        if value in ("24:00", "24:00:00"):
            return "24:00"  # hours to the end of the day (``timeutil.END_OF_DAY``)
        if WALL_TIME.fullmatch(value):
            at = time.fromisoformat(value)
            return at.strftime("%H:%M" if at.second == 0 else "%H:%M:%S")
    except ValueError:  # "2026-02-31", "25:00": not a day or a time, shown as written
        return None
    return None


def _readable_time(value: datetime | str) -> str | None:
    """A stored instant in clinic time, as the pages show times ("9 Dec 2026, 10:00"), or
    None when it is not one: a time without its offset is no instant, so it stays as written."""
    if isinstance(value, str):
        if not ISO_DATETIME.fullmatch(value):
            return None
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    return clinic_dt(value, "short") if value.tzinfo is not None else None


def _readable_value(value: Any, names: Mapping[Any, str] | None = None) -> Markup:
    """A stored value as the page shows it, escaped; a name or any other text is isolated
    (``<bdi>``): one typed in a right-to-left script would otherwise take the arrow and the
    other value of "before → after", or the next item of a list, into its run."""
    if value is None or value == "":
        return escape(NOTHING)
    if isinstance(value, bool):
        return escape(_("yes") if value else _("no"))
    if names is not None and isinstance(value, int | str) and value in names:
        return isolated(names[value])
    if isinstance(value, datetime | str) and (when := _readable_time(value)) is not None:
        return escape(when)
    if isinstance(value, date | str) and (day := _readable_day_or_time(value)) is not None:
        return escape(day)
    if isinstance(value, list | tuple):
        return Markup(", ").join(_readable_value(item, names) for item in value) or escape(NOTHING)
    if isinstance(value, Mapping):
        return Markup("; ").join(
            Markup("{}: {}").format(key, _readable_value(item)) for key, item in value.items()
        )
    if isinstance(value, str):
        return isolated(value)
    return escape(str(value))


def readable_details(
    details: Mapping[str, Any] | None,
    names: Mapping[str, Mapping[Any, str]] | None = None,
    leave_out: str | None = None,
) -> list[Markup]:
    """Stored details (an audit row's JSON) as "key: value" lines a person reads: text as
    written ("Kantstraße", not "Kantstra\\u00dfe"), lists joined, a change as "before → after",
    a nested group's keys after its own ("filters status: all"), instants in clinic time,
    days as the pages write dates ("4 Dec 2026"), wall-clock times without their seconds.
    ``names`` gives, by key, the names of the values stored under it (``{"location_id": {1:
    "Main clinic"}}``), and such a key reads as what it names ("location", not "location
    id"); a value it does not name (a record since deleted) is shown as stored. The key
    ``leave_out`` is not shown (the page says it elsewhere). Each line is markup: its text
    escaped, each name and other text in it isolated (``<bdi>``)."""
    lines: list[Markup] = []
    names = names or {}

    def walk(label: str, key: str, value: Any) -> None:
        named = names.get(key)
        if isinstance(value, Mapping) and set(value) == {"before", "after"}:
            before = _readable_value(value["before"], named)
            after = _readable_value(value["after"], named)
            lines.append(Markup("{}: {} → {}").format(label, before, after))
        elif isinstance(value, Mapping) and value:
            for inner, item in value.items():
                walk(f"{label} {_key_label(str(inner), names)}".strip(), str(inner), item)
        else:
            lines.append(Markup("{}: {}").format(label, _readable_value(value, named)))

    for key, value in (details or {}).items():
        if key == leave_out:
            continue
        walk(_key_label(str(key), names), str(key), value)
    return lines


def _key_label(key: str, names: Mapping[str, Any]) -> str:
    """A details key as words: "start_time" is "start time", and a key whose ids are named
    is what they are the ids of ("specialist_id" is "specialist")."""
    if key.endswith("_id") and key in names:
        key = key.removesuffix("_id")
    return key.replace("_", " ")


# A notice's or consent text's version as it is named: the day it took effect ("2026-12-05"),
# or its month ("2026-11").
VERSION_MONTH = re.compile(r"\d{4}-\d{2}")


def version_date(version: str | None) -> str | None:
    """A text's version (``PRIVACY_NOTICE_VERSION``, ``FOLLOWUP_CONSENT_VERSION``) as people
    read a date: "2026-12-05" is "5 Dec 2026" and "2026-11" is "Nov 2026", written as the
    pages write dates. None for a version named otherwise ("v2"), which is shown as written."""
    if not version:
        return None
    try:
        if ISO_DATE.fullmatch(version):
            return clinic_date(date.fromisoformat(version))
        if VERSION_MONTH.fullmatch(version):
            return clinic_date(date.fromisoformat(f"{version}-01"), "MMM y")
    except ValueError:  # "2026-13": not a date, shown as written
        return None
    return None


def clinic_phone_after() -> str:
    """What ends "Please call the clinic%(phone)s.": a colon and the clinic's phone number,
    or nothing when none is set. A patient told to call is given the number where they
    read it."""
    phone = current_app.config.get("CLINIC_PHONE")
    return f": {phone}" if phone else ""


def register_template_helpers(app: Flask) -> None:
    app.add_template_filter(clinic_dt)
    app.add_template_filter(readable_details)
    app.add_template_filter(clinic_date)
    app.add_template_filter(phone_number)
    app.add_template_filter(clock_text)
    app.add_template_global(choice_label)
    app.add_template_global(choice_labels)
    app.add_template_global(yes_no)
    app.add_template_global(age)
    app.add_template_global(filesize)
    app.add_template_global(switch_language_url)
    app.add_template_global(language_name)
    app.add_template_global(clinic_zone_name)
    app.add_template_global(clinic_phone_after)
    app.add_template_global(version_date)

    @app.context_processor
    def _clinic() -> dict[str, Any]:
        return {
            "clinic_name": app.config["CLINIC_NAME"],
            "clinic_phone": app.config["CLINIC_PHONE"],
            "current_locale": str(get_locale() or "en"),
            "languages": [
                (code, LANGUAGE_NAMES.get(code, code)) for code in app.config["LANGUAGES"]
            ],
            "clinic_address": app.config["CLINIC_ADDRESS"],
        }
