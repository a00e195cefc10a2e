"""Forms for signing in and managing staff accounts."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import (
    EmailField,
    HiddenField,
    PasswordField,
    RadioField,
    StringField,
    ValidationError,
)
from wtforms.validators import DataRequired, EqualTo, Length

from booking.forms import (
    BaseForm,
    EmailAddress,
    MultiCheckboxField,
    has_visible_text,
    options,
    stripped,
)
from booking.staff.auth import MIN_PASSWORD_LENGTH
from booking.staff.models import StaffRole

ROLE_CHOICES = [
    (StaffRole.COORDINATOR.value, _l("Coordinator: works every request")),
    (StaffRole.SPECIALIST.value, _l("Specialist: sees the requests assigned to them")),
    (StaffRole.ADMIN.value, _l("Administrator: also manages staff accounts and settings")),
]
# The short names, for the accounts table and its role menus.
ROLE_NAMES = {
    StaffRole.COORDINATOR.value: _l("Coordinator"),
    StaffRole.SPECIALIST.value: _l("Specialist"),
    StaffRole.ADMIN.value: _l("Administrator"),
}


def _password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[
            DataRequired(_l("Please enter a password.")),
            Length(
                min=MIN_PASSWORD_LENGTH,
                max=200,
                message=_l("Use at least %(n)d characters.", n=MIN_PASSWORD_LENGTH),
            ),
        ],
        description=_l(
            "At least %(n)d characters; a passphrase is easiest.", n=MIN_PASSWORD_LENGTH
        ),
        render_kw={"autocomplete": "new-password"},
    )


class LoginForm(BaseForm):
    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(_l("Please enter your email address.")), Length(max=254)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(_l("Please enter your password.")), Length(max=200)],
        render_kw={"autocomplete": "current-password"},
    )


class ForgotPasswordForm(BaseForm):
    email = EmailField(
        _l("Email address"),
        validators=[DataRequired(_l("Please enter your email address.")), Length(max=254)],
        render_kw={"autocomplete": "username"},
    )


class ResetPasswordForm(FlaskForm):
    password = _password_field(_l("New password"))
    confirm = PasswordField(
        _l("New password again"),
        validators=[EqualTo("password", message=_l("The two passwords do not match."))],
        render_kw={"autocomplete": "new-password"},
    )


def _staff_email_field(description: object = "") -> EmailField:
    """A staff member's email address (``description``: help shown under the box)."""
    return EmailField(
        _l("Email address"),
        validators=[
            DataRequired(_l("Please enter an email address.")),
            EmailAddress(_l("Please enter a valid email address.")),
            Length(max=254),
        ],
        filters=[stripped],
        description=description,
    )


class _StaffNameForm(BaseForm):
    """A staff member's name, as an admin gives it (a new account, a correction)."""

    full_name = StringField(
        _l("Full name"), validators=[DataRequired(_l("Please enter a name.")), Length(max=200)]
    )

    def validate_full_name(self, field: StringField) -> None:
        if not has_visible_text(field.data):
            raise ValidationError(_("Please enter a name."))


class StaffCreateForm(_StaffNameForm):
    email = _staff_email_field()
    role = RadioField(
        _l("Role"),
        choices=options(ROLE_CHOICES),
        default=StaffRole.COORDINATOR.value,
        validators=[DataRequired(_l("Please choose a role."))],
    )
    password = _password_field(_l("First password"))


class StaffDetailsForm(_StaffNameForm):
    """A colleague's name and email address, corrected by an admin."""

    email = _staff_email_field(
        _l(
            "Changing it signs them out everywhere, and a password reset link sent to the old "
            "address stops working. They sign in with the new address."
        )
    )

    # The name and address as the page showed them (``services.details_mark``): a post from
    # a page older than another admin's correction does not undo it.
    shown = HiddenField()


class OwnDetailsForm(_StaffNameForm):
    """A staff member's own name and email address; a new address needs their password."""

    email = _staff_email_field(
        _l(
            "Changing it signs you out everywhere; you then sign in with the new address. "
            "The old address and the new one are both told of the change."
        )
    )
    password = PasswordField(
        _l("Your current password"),
        validators=[Length(max=200)],
        description=_l("Needed only to change your email address."),
        render_kw={"autocomplete": "current-password"},
    )
    shown = HiddenField()  # as in StaffDetailsForm


class CodeForm(BaseForm):
    """Signing in: the authenticator's code or a recovery code (letters, digits and a dash,
    so a phone shows its full keyboard, not the number pad)."""

    code = StringField(
        _l("Code"),
        validators=[DataRequired(_l("Please enter the code.")), Length(max=20)],
        description=_l("The 6-digit code from your authenticator app, or a recovery code."),
        render_kw={"autocomplete": "one-time-code", "autocapitalize": "none"},
    )


class SetupCodeForm(BaseForm):
    """Setting up two-factor sign-in: a code from the app being set up (there are no
    recovery codes yet; they come after it)."""

    code = StringField(
        _l("Code"),
        validators=[DataRequired(_l("Please enter the code.")), Length(max=20)],
        description=_l("The 6-digit code your authenticator app shows now."),
        render_kw={"autocomplete": "one-time-code", "inputmode": "numeric"},
    )


class ReplaceTwoFactorForm(SetupCodeForm):
    """Setting up two-factor sign-in again on an account that has it: the password first, so
    a session left open (or taken) cannot swap the second factor for one of its own."""

    password = PasswordField(
        _l("Your password"),
        validators=[DataRequired(_l("Please enter your password."))],
        render_kw={"autocomplete": "current-password"},
    )


class TwoFactorPolicyForm(FlaskForm):
    roles = MultiCheckboxField(
        _l("Require two-factor sign-in for"),
        choices=options(ROLE_CHOICES),
        description=_l(
            "People in a required role are asked to set it up the next time they open a page."
        ),
    )
