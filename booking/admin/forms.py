"""The administrators' forms for the clinic's places (the scheduling settings have theirs in
``scheduling_forms``), and the name fields of what patients read in their language."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, TypeVar

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString
from wtforms import Field, HiddenField, StringField, ValidationError
from wtforms.validators import DataRequired, Length, Optional

from booking.forms import BaseForm, has_visible_text
from booking.scheduling.services import other_languages
from booking.templating import language_name

NAME_MAX = 120  # the name columns' size


def _visible_or_empty(_form: BaseForm, field: Field) -> None:
    if field.data and not has_visible_text(field.data):
        raise ValidationError(_("Please enter a name, or leave the box empty."))


def _other_name(code: str, max_length: int) -> StringField:
    """The optional name in language ``code``, labelled in the reader's language."""
    language = LazyString(language_name, code)
    return StringField(
        _l("Name in %(language)s", language=language),
        validators=[Optional(), Length(max=max_length), _visible_or_empty],
        description=_l(
            "What patients reading %(language)s see. Left empty, they see the name above.",
            language=language,
        ),
    )


def _main_name_label() -> str:
    # Beside "Name in English", a bare "Name" reads as any language: it says the clinic's, so
    # a Spanish clinic's admin types Spanish there. Alone, it needs not. On the class, not set
    # per form: the signed-out page (``typed_answers``) reads a posted field's label from the
    # form classes, and must name the field as the form showed it.
    if other_languages():
        clinic = current_app.config["BABEL_DEFAULT_LOCALE"]
        return _("Name in %(language)s", language=language_name(clinic))
    return _("Name")


# The label of a names form's main field (``name``, or ``label``), in the clinic's language.
MAIN_NAME = LazyString(_main_name_label)


class NamesForm(BaseForm):
    """A form naming something patients read: ``name`` in the clinic's language and, in the
    class ``names_form`` makes of it, a ``name_<code>`` field per other language (``label``
    and ``label_<code>`` for a form whose ``named_by`` is "label")."""

    languages: tuple[str, ...] = ()
    named_by: ClassVar[str] = "name"
    name_max: ClassVar[int] = NAME_MAX

    def other_name_fields(self) -> list[Field]:
        return [self[f"{self.named_by}_{code}"] for code in self.languages]

    def other_names(self) -> dict[str, str]:
        """The names in the other languages by code, as typed ("" for none)."""
        return {code: self[f"{self.named_by}_{code}"].data or "" for code in self.languages}


F = TypeVar("F", bound=NamesForm)


@functools.cache
def _in_languages(form_class: type[F], languages: tuple[str, ...]) -> type[F]:
    fields = {
        f"{form_class.named_by}_{code}": _other_name(code, form_class.name_max)
        for code in languages
    }
    return type(form_class.__name__, (form_class,), {**fields, "languages": languages})


def names_form(form_class: type[F], **kwargs: Any) -> F:
    """``form_class`` with a name field for each language patients read besides the
    clinic's (``LANGUAGES``): a language added there needs no change here."""
    return _in_languages(form_class, tuple(other_languages()))(**kwargs)


def names_data(named: Any) -> dict[str, str]:
    """A form's starting values from a row's names (``name`` and ``name_<code>``)."""
    return {"name": named.name, **{f"name_{code}": n for code, n in (named.names or {}).items()}}


class LocationNamesForm(NamesForm):
    name = StringField(
        MAIN_NAME, validators=[DataRequired(_l("Please enter a name.")), Length(max=NAME_MAX)]
    )

    def validate_name(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter a name."))


class LocationForm(LocationNamesForm):
    address = StringField(
        _l("Address"), validators=[DataRequired(_l("Please enter the address.")), Length(max=300)]
    )

    def validate_address(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter the address."))


class LocationEditForm(LocationForm):
    """A location's names and address, changed by an admin."""

    address = StringField(
        _l("Address"),
        validators=[DataRequired(_l("Please enter the address.")), Length(max=300)],
        description=_l(
            "Patients read it in their emails, on their pages and in their calendar files. "
            "Saved changed (in more than spacing or capitals), it is emailed to every patient "
            "with an in-person appointment to come here."
        ),
    )
    # The names and address as the page showed them (``services.location_mark``): a post
    # from a page older than another admin's change does not undo it.
    shown = HiddenField()


class ChecklistItemForm(NamesForm):
    """An item of the clinic's own checklist, named in the clinic's language and, optionally,
    in each other language patients read (``names_form`` adds a ``label_<code>`` field for
    each, whichever language the clinic's is)."""

    named_by = "label"
    name_max = 200

    label = StringField(
        MAIN_NAME,
        validators=[DataRequired(_l("Please enter the item's name.")), Length(max=200)],
        description=_l('As staff and patients read it, e.g. "X-ray of the whole spine".'),
    )
