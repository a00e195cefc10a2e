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
