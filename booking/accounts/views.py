"""Staff sign-in, password reset and (for admins) staff accounts."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response

from booking.accounts.forms import (
    ROLE_CHOICES,
    ROLE_NAMES,
    CodeForm,
    ForgotPasswordForm,
    LoginForm,
    OwnDetailsForm,
    ReplaceTwoFactorForm,
    ResetPasswordForm,
    SetupCodeForm,
    StaffCreateForm,
    StaffDetailsForm,
    TwoFactorPolicyForm,
)
from booking.crypto import (
    text_digest,
)
from booking.extensions import db, limiter
from booking.forms import confirmation_page, confirmed
from booking.scheduling.services import appointments_to_come
from booking.security import (
    private_link_limit,
    seal_in_session,
    sealed_in_session,
    token_in_url,
    typed_address_key,
)
from booking.staff import services, twofactor
from booking.staff.auth import (
    DEVICE_COOKIE,
    DEVICE_DAYS,
    device_cookie_for,
    end_session,
    keep_session_alive,
    roles_required,
    start_session,
    trusted_device,
    user_for_reset_token,
    verify_password,
)
from booking.staff.models import (
    StaffRole,
    StaffUser,
    configured_two_factor_roles,
    two_factor_required_roles,
)
from booking.templating import isolated, message_of, naming, unfilled

bp = Blueprint("staff", __name__, url_prefix="/staff")


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


# Guessing spread over many addresses is slowed per account too: failed attempts (401) count
# against the account typed in, for a window, never as a permanent lockout; those from a
# browser that signed in to it before count for that browser alone (``trusted_device``), so
# others' attempts cannot keep the account's owner out.
def _account_limit() -> str:
    return current_app.config["LOGIN_ACCOUNT_RATE_LIMIT"]


def _account_key() -> str:
    typed = request.form.get("email") or ""
    device = trusted_device(typed)
    if device is not None:
        return "login-device:" + device
    return typed_address_key("login-account")


def _code_limit() -> str:
    return current_app.config["TWO_FACTOR_ACCOUNT_RATE_LIMIT"]


def _code_account_key() -> str:
    pending = str(session.get(PENDING_KEY) or "")
    return "login-code-account:" + text_digest(pending)


def _failed(response: Response) -> bool:
    return response.status_code == 401


# Resets per address typed, from any network address, so that many cannot flood one staff
# inbox. Counted for every address alike, an account's or not: the refusal (its page says
# why) tells nobody whether an account exists.
def _reset_account_limit() -> str:
    return current_app.config["PASSWORD_RESET_ACCOUNT_RATE_LIMIT"]


def _reset_account_key() -> str:
    return typed_address_key("password-reset-account")


def _reset_asked(response: Response) -> bool:
    return response.status_code == 302  # a reset was asked for (not a form sent back)


def _too_many_resets() -> str:
    return _(
        "Several links to choose a new password were asked for this address in the last "
        "hour. Please wait an hour, then ask again, or ask an administrator of the clinic."
    )


def _safe_next(target: str | None) -> str | None:
    """``next``, only when it is a staff path on this site."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/staff"):
            return target
    return None


def _home(user: StaffUser) -> str:
    """Where signing in leads without a ``next``: a specialist's day (today's agenda), the
    queue for everyone else."""
    if user.role == StaffRole.SPECIALIST:
        return url_for("calendar.view")
    return url_for("dashboard.home")


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_account_limit, key_func=_account_key, methods=["POST"], deduct_when=_failed)
def login() -> Response | str | tuple[str, int]:
    if current_user.is_authenticated:
        return redirect(url_for("dashboard.home"))
    form = LoginForm()
    if form.validate_on_submit():
        user = services.authenticate(form.email.data, form.password.data)
        if user is not None and user.totp_enabled:
            # Half signed in: nothing is accessible until the code is checked.
            session[PENDING_KEY] = user.session_token
            session[PENDING_NEXT_KEY] = _safe_next(request.args.get("next"))
            return redirect(url_for("staff.login_code"))
        if user is not None:
            return _complete_login(user, _safe_next(request.args.get("next")) or _home(user))
        # The same words whether the account exists or not.
        form.form_errors.append(_("That email address and password do not match."))
        return render_template("staff/login.html", form=form), 401
    return render_template("staff/login.html", form=form)


PENDING_KEY = "staff_pending_2fa"
PENDING_NEXT_KEY = "staff_pending_next"
SETUP_KEY = "staff_totp_setup"
RESET_KEY = "staff_password_reset"  # an opened reset link's token, sealed


def _complete_login(user: StaffUser, target: str) -> Response:
    start_session(user)
    response = redirect(target)
    response.set_cookie(
        DEVICE_COOKIE,
        device_cookie_for(user),
        max_age=DEVICE_DAYS * 86400,
        path=url_for("staff.login"),  # the sign-in page and its code step only
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_code_limit, key_func=_code_account_key, methods=["POST"], deduct_when=_failed)
def login_code() -> Response | str | tuple[str, int]:
    token = session.get(PENDING_KEY)
    user = (
        db.session.scalar(select(StaffUser).where(StaffUser.session_token == token))
        if (token)
        else None
    )
    if user is None or not user.active or not user.totp_enabled:
        return redirect(url_for("staff.login"))
    form = CodeForm()
    if form.validate_on_submit():
        if twofactor.verify(user, form.code.data):
            target = session.pop(PENDING_NEXT_KEY, None) or _home(user)
            session.pop(PENDING_KEY, None)
            return _complete_login(user, target)
        form.code.errors = [*form.code.errors, _("That code is not right. Please try again.")]
        return render_template("staff/login_code.html", form=form), 401
    return render_template("staff/login_code.html", form=form)


@bp.route("/two-factor", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@roles_required()
def two_factor_setup() -> Response | str | tuple[str, int]:
    """Enrol an authenticator app: scan the QR code, type one code, keep the recovery codes.
    An account that has one already confirms its password before replacing it."""
    secret = _setup_secret()
    replacing = current_user.totp_enabled
    form = ReplaceTwoFactorForm() if replacing else SetupCodeForm()
    if form.validate_on_submit():
        if replacing and not verify_password(current_user, form.password.data):
            services.record_refused_password(current_user, "two-factor replacement")
            form.password.errors = [*form.password.errors, _("That password is not right.")]
            return _two_factor_page(form, secret, 401)
        codes = twofactor.enable(current_user, secret, form.code.data)
        if codes is not None:
            session.pop(SETUP_KEY, None)
            return render_template("staff/two_factor_codes.html", codes=codes)
        form.code.errors = [*form.code.errors, _("That code is not right. Please try again.")]
    return _two_factor_page(form, secret, 422 if form.errors else 200)


def _setup_secret() -> str:
    """The secret being enrolled, kept in the session between the page and its code. The
    session cookie is signed, not encrypted: the secret is kept in it encrypted, or a cookie
    read during set-up would give a lasting second factor to whoever holds the password."""
    secret = sealed_in_session(SETUP_KEY)
    if secret is None:  # none yet, or sealed with a retired key: a new one
        secret = twofactor.new_secret()
        seal_in_session(SETUP_KEY, secret)
    return secret


def _two_factor_page(form: SetupCodeForm, secret: str, status: int) -> tuple[str, int]:
    return render_template(
        "staff/two_factor_setup.html",
        form=form,
        secret=secret,
        qr=twofactor.provisioning_qr(current_user, secret),
    ), status


@bp.post("/logout")
@roles_required()
def logout() -> Response:
    services.log_out(current_user)
    end_session("signed_out")
    flash(_("You are signed out."), "info")
    return redirect(url_for("staff.login"))


@bp.post("/session/keep-alive")
@roles_required()
def keep_alive() -> tuple[str, int]:
    """The idle warning's "Stay signed in" (``static/js/idle-warning.js``): 204, the page
    stays as it is with what was typed in it. A session already over was answered by
    ``end_idle_staff_sessions`` with the sign-in page instead, which the script reports."""
    keep_session_alive()
    return "", 204


@bp.route("/password/forgot", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(
    _reset_account_limit,
    key_func=_reset_account_key,
    methods=["POST"],
    deduct_when=_reset_asked,
    error_message=_too_many_resets,
)
def forgot_password() -> Response | str | tuple[str, int]:
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        try:
            services.request_password_reset(form.email.data)
        except services.ResetNotQueuedError:
            flash(
                _(
                    "We could not send a link just now: a part of the system is briefly "
                    "unavailable. Please try again in a few minutes."
                ),
                "danger",
            )
            return render_template("staff/forgot_password.html", form=form, refused=True), 503
        flash(
            _(
                "If an account uses that address, we have sent it a link to choose a new "
                "password. The link works once."
            ),
            "info",
        )
        return redirect(url_for("staff.login"))
    return render_template("staff/forgot_password.html", form=form)


@bp.get("/password/reset/<token>")
@limiter.limit(private_link_limit)  # as every private link's: tries at tokens are slowed
@token_in_url
def reset_password(token: str) -> Response | tuple[str, int]:
    """A reset link, opened: its token goes into the session (sealed) and the address loses
    it, so it stays out of the browser's history and of the Referer of the page's own
    requests (a page whose address holds a key cannot send its form with ``no-referrer``:
    Chromium then sends ``Origin: null``, which ``check_same_origin`` refuses)."""
    if user_for_reset_token(token) is None:
        return render_template("staff/reset_invalid.html"), 400
    seal_in_session(RESET_KEY, token)
    return redirect(url_for(".choose_password"), code=303)


@bp.route("/password/reset", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def choose_password() -> Response | str | tuple[str, int]:
    """The new password, for the account of the reset link opened in this browser."""
    token = sealed_in_session(RESET_KEY)
    user = user_for_reset_token(token) if token else None
    if user is None:
        session.pop(RESET_KEY, None)
        return render_template("staff/reset_invalid.html"), 400
    form = ResetPasswordForm()
    if form.validate_on_submit():
        services.set_password(user, form.password.data)
        session.pop(RESET_KEY, None)
        flash(_("Your password was changed. Please sign in."), "success")
        return redirect(url_for("staff.login"))
    return render_template("staff/reset_password.html", form=form)


@bp.route("/accounts", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def accounts() -> Response | str | tuple[str, int]:
    form = StaffCreateForm()
    if form.validate_on_submit():
        try:
            user = services.create_staff(
                email=form.email.data,
                full_name=form.full_name.data,
                role=StaffRole(form.role.data),
                password=form.password.data,
                actor=current_user,
            )
        except services.StaffAccountError as exc:
            form.email.errors = [*form.email.errors, message_of(exc)]
        else:
            flash(
                naming(_("Account created for %(name)s."), name=isolated(user.full_name)), "success"
            )
            return redirect(url_for("staff.accounts"))
    status = 422 if form.errors else 200
    return _accounts_page(form, _two_factor_form()), status


def _two_factor_form(*, posted: bool = False) -> TwoFactorPolicyForm:
    """The two-factor policy form: only the roles the deployment does not already require.
    ``posted``: the rule is what was sent (it is being saved); otherwise the rule in force,
    also when the page comes back with the new-account form refused (its post has no boxes
    of the rule: read from it, every box would show unticked)."""
    form = TwoFactorPolicyForm() if posted else TwoFactorPolicyForm(formdata=None)
    fixed = configured_two_factor_roles()
    form.roles.choices = [c for c in form.roles.choices if c.value not in fixed]
    if not posted:
        form.roles.data = sorted(two_factor_required_roles() - fixed)
    return form


def _accounts_page(form: StaffCreateForm, policy: TwoFactorPolicyForm) -> str:
    fixed = configured_two_factor_roles()
    return render_template(
        "staff/accounts.html",
        form=form,
        policy=policy,
        fixed_roles=[label for value, label in ROLE_CHOICES if value in fixed],
        staff=services.list_staff(),
        role_names=ROLE_NAMES,
        required_roles=two_factor_required_roles(),
        two_factor_mark=services.two_factor_mark,
        unsent_notices=services.unsent_account_notices(),
    )


@bp.post("/accounts/notices")
@roles_required(StaffRole.ADMIN)
def settle_account_notice() -> Response:
    """An admin has dealt with a notice about a staff account that could not be sent
    (``services.settle_account_notice``)."""
    # CSRFProtect has already checked the token of this post.
    if services.settle_account_notice(request.form.get("email_id", type=int), actor=current_user):
        flash(_("The notice was taken off the list."), "success")
    return redirect(url_for("staff.accounts"))


@bp.post("/accounts/two-factor")
@roles_required(StaffRole.ADMIN)
def two_factor_policy() -> Response | tuple[str, int]:
    policy = _two_factor_form(posted=True)
    if not policy.validate_on_submit():
        return _accounts_page(StaffCreateForm(formdata=None), policy), 422
    services.set_two_factor_roles(set(policy.roles.data or []), actor=current_user)
    flash(_("The two-factor sign-in rule was saved."), "success")
    return redirect(url_for("staff.accounts") + "#two-factor")


@bp.post("/accounts/<int:user_id>/active")
@roles_required(StaffRole.ADMIN)
def set_active(user_id: int) -> Response | str:
    # CSRFProtect has already checked the token of this post.
    user = db.get_or_404(StaffUser, user_id)
    active = request.form.get("active") == "1"
    # Asked first, unless it changes nothing or is refused anyway (one's own account).
    if not active and user.active and user.id != current_user.id and not confirmed():
        return _confirm_deactivation(user)
    try:
        services.set_staff_active(user, active, actor=current_user)
    except services.StaffAccountError as exc:
        flash(message_of(exc), "danger")
    else:
        if active:
            flash(
                naming(_("%(name)s can sign in again."), name=isolated(user.full_name)), "success"
            )
        else:
            flash(
                naming(_("%(name)s can no longer sign in."), name=isolated(user.full_name)),
                "success",
            )
            if user.role == StaffRole.SPECIALIST:
                _warn_of_appointments_to_come(user)
    return redirect(url_for("staff.accounts"))


def _appointments_to_come_warnings(user: StaffUser) -> list[str]:
    """Said before a specialist stops seeing patients: their appointments stay theirs."""
    if user.role != StaffRole.SPECIALIST or not (waiting := appointments_to_come(user.id)):
        return []
    return [
        naming(
            ngettext(
                "%(name)s still has %(num)d appointment to come: it stays booked with them, "
                "and is to be moved to another specialist or cancelled.",
                "%(name)s still has %(num)d appointments to come: they stay booked with them, "
                "and are to be moved to another specialist or cancelled.",
                waiting,
                **unfilled("name"),
            ),
            name=isolated(user.full_name),
        )
    ]


def _confirm_deactivation(user: StaffUser) -> str:
    warnings = _appointments_to_come_warnings(user)
    return confirmation_page(
        title=naming(_("Deactivate the account of %(name)s?"), name=isolated(user.full_name)),
        button=_("Deactivate the account"),
        cancel_url=url_for("staff.accounts"),
        consequences=[
            _("They are signed out everywhere at once and can no longer sign in."),
            _("Their history stays; reactivating the account lets them sign in again."),
        ],
        warnings=warnings,
    )


@bp.post("/accounts/<int:user_id>/role")
@roles_required(StaffRole.ADMIN)
def set_role(user_id: int) -> Response | str:
    # CSRFProtect has already checked the token of this post.
    user = db.get_or_404(StaffUser, user_id)
    chosen = request.form.get("role", "")
    if chosen not in ROLE_NAMES:
        flash(_("Please choose a role."), "danger")
        return redirect(url_for("staff.accounts"))
    # Asked first, unless it changes nothing or is refused anyway (one's own role).
    if chosen != user.role and user.id != current_user.id and not confirmed():
        return _confirm_role_change(user, StaffRole(chosen))
    was_specialist = user.role == StaffRole.SPECIALIST
    try:
        changed = services.set_staff_role(user, StaffRole(chosen), actor=current_user)
    except services.StaffAccountError as exc:
        flash(message_of(exc), "danger")
        return redirect(url_for("staff.accounts"))
    role = ROLE_NAMES[chosen]
    if not changed:
        flash(
            naming(
                _("%(name)s already has the role %(role)s."),
                name=isolated(user.full_name),
                role=role,
            ),
            "info",
        )
        return redirect(url_for("staff.accounts"))
    flash(
        naming(
            _(
                "%(name)s now has the role %(role)s. They were signed out, and their next sign-in "
                "follows the new role."
            ),
            name=isolated(user.full_name),
            role=role,
        ),
        "success",
    )
    if was_specialist:
        _warn_of_appointments_to_come(user)
    return redirect(url_for("staff.accounts"))


def _confirm_role_change(user: StaffUser, role: StaffRole) -> str:
    """A change of role signs the person out everywhere at once (``set_staff_role``)."""
    consequences = [
        _(
            "They are signed out everywhere at once; their next sign-in follows the new role "
            "(what they may see and do)."
        )
    ]
    if role in two_factor_required_roles() and not user.totp_enabled:
        consequences.append(
            _("Their next sign-in asks them to set up two-factor sign-in, as the new role must.")
        )
    return confirmation_page(
        title=naming(
            _("Change the role of %(name)s to %(role)s?"),
            name=isolated(user.full_name),
            role=ROLE_NAMES[role],
        ),
        button=_("Change the role and sign them out"),
        cancel_url=url_for("staff.accounts"),
        consequences=consequences,
        warnings=_appointments_to_come_warnings(user) if role != StaffRole.SPECIALIST else [],
    )


@bp.route("/accounts/<int:user_id>/edit", methods=["GET", "POST"])
@roles_required(StaffRole.ADMIN)
def edit_account(user_id: int) -> Response | tuple[str, int]:
    """Correct a colleague's name and email address (``services.correct_staff_details``)."""
    user = db.get_or_404(StaffUser, user_id)
    form = StaffDetailsForm(
        data={
            "full_name": user.full_name,
            "email": user.email,
            "shown": services.details_mark(user),
        }
    )
    if form.validate_on_submit():
        try:
            changed = services.correct_staff_details(
                user,
                full_name=form.full_name.data,
                email=form.email.data,
                shown=form.shown.data or "",
                actor=current_user,
            )
        except services.StaffAccountError as exc:
            if exc.field == "email":
                form.email.errors = [*form.email.errors, message_of(exc)]
            else:
                form.form_errors.append(message_of(exc))
            if exc.field == "shown":  # the page now shows the account as it is
                form.shown.data = services.details_mark(user)
        else:
            if not changed:
                flash(
                    naming(_("Nothing was changed for %(name)s."), name=isolated(user.full_name)),
                    "info",
                )
            elif "email" in changed:
                flash(
                    naming(
                        _(
                            "The account of %(name)s was corrected. They were signed out, and sign "
                            "in with %(email)s from now on."
                        ),
                        name=isolated(user.full_name),
                        email=isolated(user.email),
                    ),
                    "success",
                )
            else:
                flash(
                    naming(
                        _("The account of %(name)s was corrected."), name=isolated(user.full_name)
                    ),
                    "success",
                )
            return redirect(url_for("staff.accounts"))
    page = render_template("staff/account_edit.html", form=form, user=user, role_names=ROLE_NAMES)
    return page, 422 if form.errors else 200


@bp.route("/account", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])  # a password is checked here
@roles_required()
def own_account() -> Response | tuple[str, int]:
    """Correct one's own name and email address (``services.change_own_details``)."""
    user = current_user
    form = OwnDetailsForm(
        data={
            "full_name": user.full_name,
            "email": user.email,
            "shown": services.details_mark(user),
        }
    )
    status = 200
    if form.validate_on_submit():
        try:
            changed = services.change_own_details(
                user,
                full_name=form.full_name.data,
                email=form.email.data,
                password=form.password.data or "",
                shown=form.shown.data or "",
            )
        except services.StaffAccountError as exc:
            if exc.field in ("email", "password"):
                field = getattr(form, exc.field)
                field.errors = [*field.errors, message_of(exc)]
            else:
                form.form_errors.append(message_of(exc))
            if exc.field == "shown":  # the page now shows the account as it is
                form.shown.data = services.details_mark(user)
            status = 401 if exc.field == "password" else 422
        else:
            if "email" in changed:
                address = user.email  # read before signing out: ``current_user`` then is nobody
                end_session("email_changed")
                flash(
                    naming(
                        _(
                            "Your email address was changed: please sign in with %(email)s. "
                            "An email about it is on its way to both addresses."
                        ),
                        email=isolated(address),
                    ),
                    "success",
                )
                return redirect(url_for("staff.login"))
            if changed:
                flash(_("Your name was changed."), "success")
            else:
                flash(_("Nothing was changed."), "info")
            return redirect(url_for("staff.own_account"))
    elif form.errors:
        status = 422
    return render_template("staff/own_account.html", form=form, user=user), status


@bp.post("/accounts/<int:user_id>/two-factor/reset")
@roles_required(StaffRole.ADMIN)
def reset_two_factor(user_id: int) -> Response | str:
    """Reset a colleague's two-factor sign-in (``services.reset_two_factor``). A post from a
    page shown before the colleague was reset by another admin, or before they used or set
    up two-factor sign-in again (``shown``: ``services.two_factor_mark`` as the page showed it),
    changes nothing and says so."""
    # CSRFProtect has already checked the token of this post.
    user = db.get_or_404(StaffUser, user_id)
    shown = request.form.get("shown", "")
    # Asked first, unless the service refuses it or has nothing to reset.
    if user.totp_enabled and user.active and user.id != current_user.id and not confirmed():
        return confirmation_page(
            title=naming(
                _("Reset the two-factor sign-in of %(name)s?"), name=isolated(user.full_name)
            ),
            button=_("Reset two-factor sign-in"),
            cancel_url=url_for("staff.accounts"),
            consequences=[
                _(
                    "Their authenticator app's codes and their recovery codes stop working, "
                    "and they are signed out everywhere."
                ),
                _("They are emailed that you reset it."),
            ],
        )
    try:
        reset = services.reset_two_factor(
            user,
            actor=current_user,
            shown=shown,
        )
    except services.TwoFactorChangedError as exc:
        flash(message_of(exc), "warning")
        return redirect(url_for("staff.accounts"))
    except services.StaffAccountError as exc:
        flash(message_of(exc), "danger")
        return redirect(url_for("staff.accounts"))
    if not reset:
        flash(
            naming(
                _("%(name)s has no two-factor sign-in set up: nothing was reset."),
                name=isolated(user.full_name),
            ),
            "info",
        )
    elif user.needs_second_factor:
        flash(
            naming(
                _(
                    "The two-factor sign-in of %(name)s was reset. They were signed out, an "
                    "email telling them is on its way, and they will set it up again at their "
                    "next sign-in."
                ),
                name=isolated(user.full_name),
            ),
            "success",
        )
    else:
        flash(
            naming(
                _(
                    "The two-factor sign-in of %(name)s was reset. They were signed out, and an "
                    "email telling them is on its way; their role does not require it, so they "
                    "can sign in with their password alone until they set it up again."
                ),
                name=isolated(user.full_name),
            ),
            "success",
        )
    return redirect(url_for("staff.accounts"))


def _warn_of_appointments_to_come(user: StaffUser) -> None:
    """A specialist who no longer sees patients keeps their appointments: say to move them."""
    if waiting := appointments_to_come(user.id):
        flash(
            naming(
                ngettext(
                    "%(name)s still has %(num)d appointment to come: move it to another "
                    "specialist or cancel it (the agenda shows it).",
                    "%(name)s still has %(num)d appointments to come: move them to another "
                    "specialist or cancel them (the agenda shows them).",
                    waiting,
                    **unfilled("name"),
                ),
                name=isolated(user.full_name),
            ),
            "warning",
        )
