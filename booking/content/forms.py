"""The reader's feedback on an information page."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import TextAreaField
from wtforms.validators import Length, Optional

from booking.feedback.models import MAX_COMMENT_CHARS
from booking.forms import BaseForm, ChoiceField, options


class PageFeedbackForm(BaseForm):
    useful = ChoiceField(
        _l("Was this page useful?"),
        choices=options([("yes", _l("Yes")), ("no", _l("No"))]),
        validators=[Optional()],
    )
    comment = TextAreaField(
        _l("Tell us what was missing, unclear or wrong"),
        validators=[Optional(), Length(max=MAX_COMMENT_CHARS)],
        description=_l(
            "Please do not write your name or health details. We cannot reply here. "
            "To ask about your care, call the clinic."
        ),
    )
