"""A step page rendered once and filled in for each patient (issue #16's speed).

A step's page (``step.html``) comes out the same for every patient who is on the same page of
the same step, has reached the same step, gave the same main problem and red flags and reads
the same language, except for the patient's own answers, the form's token and the proof that
the page was shown (``views._page_proof``, for this draft). So the page is rendered once with
markers where those go (each text box's value, the token, the proof, and before each option's
``class`` where ``checked`` would go), kept like the time picker (``pagecache``), and
each view fills the markers in from a form of the page's own fields: the values come from the
same WTForms fields as a full render's and are escaped the same way, at a fraction of the cost
of binding the 60-field ``RequestForm`` and running the template. The markers are replaced in
one pass, so an answer that looks like a marker stays text.

The documents step's list of files and the review's are rendered on every view, the rest of
their pages kept; the review's answers are filled in as text, as its template prints them.
Pages with messages (a post's 422 or 400) and the time and review steps with a picked time
(its card) are rendered in full.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from flask import current_app, request, session
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, Field
from wtforms.fields.choices import SelectFieldBase

from booking.forms import BaseForm
from booking.pagecache import MAX_QUERY_BYTES, app_cache
from booking.patients import steps
from booking.patients.forms import RequestForm
from booking.requests.drafts import Answers, RequestDraft
from booking.scheduling.services import scheduling_enabled
from booking.scheduling.visits import picked_from_home
from booking.timeutil import clinic_date, clinic_today

EXTENSION = "booking.patients.steppages"
FILLED = frozenset(step.code for step in steps.STEPS)

# A marker: NUL, its kind (t: the token, p: the page's proof, v: a field's value, c: an
# option's "checked", a: an answer on the review, n: a review step's link with how many it
# answered, by the step's code, d: the part rendered on every view), the
# field's name or the option's id, NUL. No answer can put a
# NUL into the kept page: it is rendered with markers, not answers.
MARK = "\x00"
MARK_RE = re.compile("\x00([tpvcadn])([^\x00]*)\x00")
# Every option and box is written ``<input class="form-check-input..." id="..."`` when not
# ticked, after its aria-* attributes if it has any (a required box's ``aria-required``):
# ``checked`` goes between them (``_form.html``; WTForms' checkbox sorts its attributes so).
OPTION_RE = re.compile(
    r'<input((?: aria-[a-z]+="[^"]*")*)( class="form-check-input[^"]*" id="([^"]+)")'
)
NO_CHOICE = "\x01"  # a value no choice has: the kept page ticks nothing


Render = Callable[[RequestForm, list | None], str]


@dataclass(frozen=True)
class Skeleton:
    """A step page's markup in pieces, with the marker after each piece but the last."""

    pieces: tuple[str, ...]
    marks: tuple[tuple[str, str], ...]
    names: tuple[str, ...]  # the page's fields, whose values fill the markers
    review: bool = False  # whether it has the review's answers


def filled_page(
    code: str,
    draft: RequestDraft,
    answers: Answers,
    page: int,
    proof: str,
    render: Render,
    live: Callable[[], str] | None = None,
) -> str | None:
    """Step ``code``'s page ``page`` for these answers, from the kept markup; None when this
    page is rendered in full. ``proof``: the page's proof for this draft, which ``render``
    puts in the page too. ``render`` renders the full page for a bound form (with the
    review's answers as given, unless None); ``live`` renders the part of the page that is
    rendered on every view (it must be in the page once)."""
    key = _key(code, draft, answers, page)
    cache = app_cache(EXTENSION)
    if key is None or cache is None:
        return None
    skeleton = cache.get(key)
    if skeleton is None:
        names = steps.fields_of(code, answers, page)
        if code == "review":
            names += tuple(name for _step, name in reviewed(answers))
        skeleton = build(names, proof, render, live, answers if code == "review" else None)
        if skeleton is None:
            return None
        cache.put(key, skeleton)
    return fill(skeleton, answers, proof, live)


def _key(code: str, draft: RequestDraft, answers: Answers, page: int) -> Hashable | None:
    """Everything a step page shows apart from the answers and the token, or None when it
    shows more (a flashed message, a picked time)."""
    if (
        code not in FILLED
        or request.method != "GET"
        or len(request.query_string) > MAX_QUERY_BYTES
        or "_flashes" in session
    ):
        return None
    scheduling: object = None
    if code == "documents":  # whether more can be added (the files are rendered each time),
        # and whether they are to bring to the visit or to have at hand for one from home
        scheduling = (
            len(draft.kept_documents) < current_app.config["MAX_DOCUMENTS"],
            picked_from_home(answers),
        )
    if code in ("time", "review") and (answers.get("slot") or [""])[0]:
        return None  # the chosen time's card, or the notice that it is gone
    if code in ("time", "review"):  # the link to the picker; the review's "no time" box
        scheduling = scheduling_enabled()
    return (
        code,
        page,
        request.query_string,  # the language links and the way back to the review
        str(get_locale() or ""),
        steps.region_of(answers),  # the function step's questions and pages
        draft.step,  # the list of steps: how far the patient got
        tuple(steps.red_flags_yes(answers)),  # the advice shown on every step
        clinic_today(),  # the date boxes' bounds
        scheduling,  # the picker link (time, review), the documents step's upload form
    )


def build(
    names: tuple[str, ...],
    proof: str,
    render: Render,
    live: Callable[[], str] | None = None,
    review: Answers | None = None,
) -> Skeleton | None:
    """The page rendered with markers for the fields ``names`` and for ``proof`` (for the
    part ``live`` renders, and for each answer on the review of ``review``); None if the
    markup does not come out as expected (then every view renders it in full)."""
    data: MultiDict[str, str] = MultiDict()
    for name in names:
        kind = getattr(RequestForm, name).field_class
        if name == "slot":  # no time picked: kept pages are only for those (``_key``)
            data[name] = ""
        elif issubclass(kind, SelectFieldBase):
            data[name] = NO_CHOICE
        elif not issubclass(kind, BooleanField):  # a box without a value is not ticked
            data[name] = f"{MARK}v{name}{MARK}"
    form = RequestForm(formdata=data)
    summaries = None
    if review is not None:
        summaries = [
            (
                step,
                [steps.Answer(answer.label, f"{MARK}a{name}{MARK}") for name, answer in each],
                f"{MARK}n{step.code}{MARK}",
            )
            for step, each in _summaries(form, review)
        ]
    markup = render(form, summaries)
    token = generate_csrf()
    if (
        MARK_RE.sub("", markup).count(MARK)
        or token not in markup
        or proof not in markup
        or "<input checked" in markup
    ):
        return None
    if live is not None:
        part = live()
        if markup.count(part) != 1:
            return None
        markup = markup.replace(part, f"{MARK}d{MARK}")
    markup = markup.replace(token, f"{MARK}t{MARK}").replace(proof, f"{MARK}p{MARK}")
    markup = OPTION_RE.sub(
        lambda found: f"<input{found[1]}{MARK}c{found[3]}{MARK}{found[2]}", markup
    )
    split = MARK_RE.split(markup)
    if NO_CHOICE in markup:
        return None
    marks = tuple(zip(split[1::3], split[2::3], strict=True))
    if any(kind in "va" and name not in names for kind, name in marks):
        return None
    return Skeleton(tuple(split[0::3]), marks, names, review is not None)


@functools.lru_cache(maxsize=64)
def _page_form(names: tuple[str, ...]) -> type[BaseForm]:
    """A form of only these fields of ``RequestForm`` (no token: the page's is generated on
    its own)."""
    fields: dict[str, object] = {name: getattr(RequestForm, name) for name in names}
    fields["Meta"] = type("Meta", (), {"csrf": False})
    return type("StepPageForm", (BaseForm,), fields)


def fill(
    skeleton: Skeleton, answers: Answers, proof: str, live: Callable[[], str] | None = None
) -> str:
    """The kept page with this patient's answers, this session's token and this draft's
    ``proof`` (and the part ``live`` renders)."""
    data: MultiDict[str, str] = MultiDict()
    for name in skeleton.names:
        if name in answers:
            data.setlist(name, answers[name])
    form = _page_form(skeleton.names)(formdata=data)
    values: dict[str, dict[str, str]] = {
        "t": {"": generate_csrf()},
        "p": {"": proof},
        "v": {},
        "c": {},
        "a": {},
        "n": {},
        "d": {},
    }
    if live is not None:
        values["d"][""] = live()
    if skeleton.review:
        none = f'<span class="text-body-secondary">{escape(_("No answer"))}</span>'
        summaries = _summaries(form, answers)
        values["a"] = {
            name: _answer_html(answer.text, none)
            for _step, each in summaries
            for name, answer in each
        }
        values["n"] = {
            step.code: str(escape(steps.count_text([answer for _name, answer in each])))
            for step, each in summaries
        }
    field: Field
    for field in form:
        if isinstance(field, SelectFieldBase):
            for index, choice in enumerate(field.iter_choices()):
                if choice.selected:
                    values["c"][f"{field.id}-{index}"] = " checked"
        elif isinstance(field, BooleanField):
            if getattr(field, "checked", field.data):
                values["c"][field.id] = " checked"
        else:
            values["v"][field.name] = str(escape(field._value()))
    out = [skeleton.pieces[0]]
    for (kind, name), piece in zip(skeleton.marks, skeleton.pieces[1:], strict=True):
        out.append(values[kind].get(name, ""))
        out.append(piece)
    return "".join(out)


def reviewed(answers: Answers) -> list[tuple[steps.Step, str]]:
    """The fields the review shows, by step, in page order (as ``steps.summary`` lists
    them)."""
    return [
        (step, name)
        for step in steps.STEPS[:-1]
        for name in steps.fields_of(step.code, answers)
        if name not in steps.NOT_SUMMED
    ]


def _summaries(
    form: BaseForm, answers: Answers
) -> list[tuple[steps.Step, list[tuple[str, steps.Answer]]]]:
    """The review's answers by step, each with its field's name."""
    names = reviewed(answers)
    shown = []
    for step in steps.STEPS[:-1]:
        own = [name for each, name in names if each is step]
        shown.append((step, list(zip(own, steps.summary(form, step.code, answers), strict=True))))
    return shown


def _answer_html(text: object, none: str) -> str:
    """An answer as ``_step_review.html`` prints it (``none`` when there is none)."""
    if text is None or text == "" or text == []:
        return none
    if isinstance(text, str):
        return str(escape(text))
    if isinstance(text, list | tuple):
        return str(escape(", ".join(str(item) for item in text)))
    return str(escape(clinic_date(text, "long")))  # type: ignore[arg-type]
