"""Privacy forms: finding a patient, exporting, and the typed confirmation of an erasure."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from booking.forms import BaseForm


class FindPatientForm(BaseForm):
    query = StringField(
        _l("Email address or request reference"),
        validators=[
            DataRequired(_l("Type an email address or a request reference.")),
            Length(max=254),
        ],
        description=_l("For example patient@example.com or SC-7K4M-Q2XD."),
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )


class ExportForm(FlaskForm):
    """Only the CSRF token: an export is a deliberate, audited post, never a link."""


class EraseForm(BaseForm):
    confirmation = StringField(
        _l("Type the request reference or the patient's email address to confirm"),
        validators=[
            DataRequired(_l("Type the reference or the email address to confirm.")),
            Length(max=254),
        ],
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )


class CloseErasureForm(BaseForm):
    explanation = TextAreaField(
        _l("Explanation for the patient"),
        validators=[
            DataRequired(_l("Write the explanation the patient will receive.")),
            Length(max=2000),
        ],
        description=_l(
            "Emailed to the patient as you write it: say which records the law still requires "
            "the clinic to keep, and until when. Write no medical details."
        ),
    )
