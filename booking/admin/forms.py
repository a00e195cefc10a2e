"""The administrators' forms for the clinic's places (the scheduling settings have theirs in
``scheduling_forms``)."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import StringField, ValidationError
from wtforms.validators import DataRequired, Length

from booking.forms import BaseForm, has_visible_text


class LocationForm(BaseForm):
    name = StringField(
        _l("Name"), validators=[DataRequired(_l("Please enter a name.")), Length(max=120)]
    )
    address = StringField(
        _l("Address"), validators=[DataRequired(_l("Please enter the address.")), Length(max=300)]
    )

    def validate_name(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter a name."))


class ChecklistItemForm(BaseForm):
    """An item of the clinic's own checklist, named in the clinic's language and, optionally,
    in each other language patients use (a field per language is added by the view)."""

    label = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Please enter the item's name.")), Length(max=200)],
        description=_l('As staff and patients read it, e.g. "X-ray of the whole spine".'),
    )
    label_es = StringField(
        _l("Name in Spanish"),
        validators=[Length(max=200)],
        description=_l("What Spanish-speaking patients read; without it they read the name above."),
    )
