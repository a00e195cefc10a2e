"""The request form as steps: which questions each step asks, in which order.

The steps share one form (``RequestForm``): each step posts its own fields, the draft
(``booking.requests.drafts``) keeps every step's answers, and the form is bound to all of them
to check a step (only that step's messages are shown) and, at the end, the whole request. So
nothing here repeats a rule of the form.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from werkzeug.datastructures import MultiDict

from booking.patients.forms import RequestForm
from booking.requests import instruments, triage
from booking.requests.drafts import Answers, RequestDraft


@dataclass(frozen=True)
class Step:
    code: str
    title: object  # a lazy string
    # The form fields the step asks; the "function" step's depend on the main problem.
    fields: tuple[str, ...] = ()


TIME_FIELDS = ("appointment_type", "slot", "preferred_days", "preferred_time_of_day")
# The "history" step's two parts: what is wrong and what was tried, then scans, medicines
# and general health (one page was 2,650 px tall on a 390 px phone; with the scans in the
# first part, it was 2,160 px in Spanish).
HISTORY_TREATMENT = (
    "diagnoses",
    "diagnosis_other",
    "treatments",
    "surgery_details",
)
HISTORY_HEALTH = (
    "imaging",
    "imaging_when",
    "medications",
    "allergies",
    "blood_thinners",
    "diabetes",
    "smoking",
    "other_history",
)
STEPS: tuple[Step, ...] = (
    Step("time", _l("Time"), (*TIME_FIELDS, "earliest_date")),
    Step(
        "about",
        _l("About you"),
        ("full_name", "date_of_birth", "guardian_name", "email", "phone", "preferred_contact"),
    ),
    Step(
        "symptoms",
        _l("Your symptoms"),
        (
            "pain_locations",
            "spine_region",
            "pain_side",
            "pain_duration",
            "radiating_pain",
            "numbness",
            "weakness",
        ),
    ),
    Step("function", _l("Pain and daily life")),
    Step("history", _l("Health and treatment"), (*HISTORY_TREATMENT, *HISTORY_HEALTH)),
    Step("documents", _l("Documents")),
    Step(
        "review", _l("Check and send"), ("privacy_consent", "contact_consent", "followup_consent")
    ),
)
BY_CODE = {step.code: step for step in STEPS}
FIRST = STEPS[0].code
RED_FLAG_FIELDS = tuple(f"red_{flag.code}" for flag in triage.ASKED)


def number(code: str) -> int:
    """The step's place, from 1."""
    return [step.code for step in STEPS].index(code) + 1


def next_code(code: str) -> str | None:
    index = number(code)
    return STEPS[index].code if index < len(STEPS) else None


def previous_code(code: str) -> str | None:
    index = number(code) - 2
    return STEPS[index].code if index >= 0 else None


def red_flag_answers(answers: Answers) -> dict[str, str]:
    """The first step's answers kept in the draft, by flag code ("yes" or "no")."""
    return {
        name[4:]: values[0] for name, values in answers.items() if name[:4] == "red_" and values
    }


def red_flags_yes(answers: Answers) -> list[str]:
    """The codes of the flags the draft's first step answered "yes"."""
    return [code for code, answer in red_flag_answers(answers).items() if answer == "yes"]


# The "About you" answers that say who the patient is or how to reach them (the contact
# preference, chosen beforehand, names nobody): a draft holding one, or any document, is
# hidden in its browser after a while without use (``DRAFT_BROWSER_IDLE_MINUTES``,
# ``booking.patients.views``).
IDENTIFYING_FIELDS = tuple(name for name in BY_CODE["about"].fields if name != "preferred_contact")


def identifies(answers: Answers, documents: Callable[[], Collection[object]] = lambda: ()) -> bool:
    """Whether the draft names the patient or reaches them: a name, a date of birth, an email
    address or a phone number among its ``answers``, or any uploaded document (``documents``,
    asked only when the answers name nobody: a page that does not show them has not loaded
    them). A file names the patient as surely as the form: its name ("MRI Erika
    Mustermann.pdf") and its content (a report's header, a scan's labels). The first step's
    answers and the symptoms' alone do not."""
    named = any(value.strip() for name in IDENTIFYING_FIELDS for value in answers.get(name, ()))
    return named or bool(documents())


def region_of(answers: Answers) -> str | None:
    region = (answers.get("spine_region") or [None])[0]
    return region if region in instruments.REGION_CODES else None


# The "function" step is shown in pages, so each fits about two screens of a phone (at most
# 2.5 screens of 844 px, as the phone's browser test checks): the pain scales at most four a
# page (a "both" patient's eight as two pages), then the instrument's sections at most two a
# page. Measured at 390 px: every step's page carries about 1,300 px of menu, emergency
# notice, list of steps, headings, instructions and buttons, and a section with its six
# statements takes 210 to 360 px, so four sections a page were up to 2,620 px; two are at
# most about 2,000.
PAIN_SCALES_PER_PAGE = 4
SECTIONS_PER_PAGE = 2


def even_pages(names: list[str], most: int) -> list[tuple[str, ...]]:
    """``names`` in order, in as few pages of at most ``most`` as they need, of even size
    (ten in pages of at most four: 4, 3 and 3)."""
    count = -(-len(names) // most)  # pages needed
    size, extra = divmod(len(names), count) if count else (0, 0)
    pages, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        pages.append(tuple(names[start:end]))
        start = end
    return pages


def function_pages(answers: Answers) -> list[tuple[str, ...]]:
    """The pages of the "function" step for these answers (none without a main problem)."""
    region = region_of(answers)
    if region is None:
        return []
    pain = [
        name
        for area in instruments.REGION_PAIN_AREAS[region]
        for name in (area.now_name, area.worst_name)
    ]
    pages = even_pages(pain, PAIN_SCALES_PER_PAGE)
    for instrument in instruments.instruments_for(region):
        names = [f"{instrument.code}_{key}" for key in instrument.section_keys]
        pages += even_pages(names, SECTIONS_PER_PAGE)
    return pages


def history_pages(_answers: Answers) -> list[tuple[str, ...]]:
    """The pages of the "history" step (the same for every patient)."""
    return [HISTORY_TREATMENT, HISTORY_HEALTH]


# The steps shown in pages, each page about two screens of a phone: the function that gives a
# step's pages for the draft's answers. Every other step is one page of its fields.
PAGED: dict[str, Callable[[Answers], list[tuple[str, ...]]]] = {
    "function": function_pages,
    "history": history_pages,
}


def pages(code: str, answers: Answers) -> list[tuple[str, ...]]:
    """The fields of each page of step ``code``, for these answers (none for the "function"
    step without a main problem)."""
    paged = PAGED.get(code)
    return paged(answers) if paged is not None else [BY_CODE[code].fields]


def pages_of(code: str, answers: Answers) -> int:
    """How many pages step ``code`` is shown in (at least 1)."""
    return max(1, len(pages(code, answers)))


def page_arg(code: str, answers: Answers, value: object) -> int:
    """A page number from the URL or the form, kept within the step's pages."""
    try:
        page = int(str(value))
    except ValueError:
        return 1
    return min(max(page, 1), pages_of(code, answers))


def fields_of(code: str, answers: Answers, page: int | None = None) -> tuple[str, ...]:
    """The fields step ``code`` asks, for these answers (the main problem decides the pain
    scales and the instrument); with ``page``, only that page's."""
    shown = pages(code, answers)
    if page is not None:
        return shown[page - 1] if 0 < page <= len(shown) else ()
    return tuple(name for each in shown for name in each)


def posted_answers(
    code: str, answers: Answers, posted: MultiDict[str, str], page: int = 1
) -> Answers:
    """The page's answers as posted (a box left unticked is posted as nothing: no answer)."""
    return {name: posted.getlist(name) for name in fields_of(code, answers, page)}


def bind_form(draft: RequestDraft, answers: Answers, csrf_token: str | None = None) -> RequestForm:
    """The request form bound to ``answers`` (the draft's, with a step's posted ones over
    them). With ``csrf_token`` it is a post to check (the token included); without, a page."""
    data: MultiDict[str, str] = MultiDict()
    for name, values in answers.items():
        data.setlist(name, values)
    data["submission_token"] = draft.submission_token
    if csrf_token is not None:
        data["csrf_token"] = csrf_token
    return RequestForm(formdata=data)


def step_errors(
    form: RequestForm, code: str, answers: Answers, page: int | None = None
) -> dict[str, list[str]]:
    """The messages of one step's fields, or one page's (the form checked every field)."""
    return {
        name: list(form[name].errors)
        for name in fields_of(code, answers, page)
        if form[name].errors
    }


def first_page_with_errors(form: RequestForm, code: str, answers: Answers) -> int:
    for page in range(1, pages_of(code, answers) + 1):
        if step_errors(form, code, answers, page):
            return page
    return 1


def first_step_with_errors(form: RequestForm, answers: Answers) -> str | None:
    for step in STEPS:
        if step_errors(form, step.code, answers):
            return step.code
    return None


def clear_other_errors(
    form: RequestForm, code: str, answers: Answers, page: int | None = None
) -> None:
    """Keep only step ``code``'s messages (of ``page``, if given), so a page shows what the
    patient can correct there."""
    keep = set(fields_of(code, answers, page))
    for name, field in form._fields.items():
        if name not in keep and name != "csrf_token":
            field.errors = []
    form.form_errors = []


# The picked time is shown on its own.
NOT_SUMMED = frozenset({"appointment_type", "slot"})


@dataclass(frozen=True)
class Answer:
    """One answer as the review page shows it."""

    label: object
    text: object  # str, a list of labels, or a date (formatted by the page)


def answered(shown: list[Answer]) -> int:
    """How many of a step's answers on the review the patient gave (not "No answer")."""
    return sum(1 for answer in shown if answer.text not in (None, "", []))


def count_text(shown: list[Answer]) -> str:
    """The review's link to a step's answers, with how many the patient gave: a question
    left blank is no answer to see."""
    count = answered(shown)
    if not count:
        return _("You left these questions blank")
    return ngettext("See your answer", "See your %(num)d answers", count)


def summary(form: RequestForm, code: str, answers: Answers) -> list[Answer]:
    """Step ``code``'s answers for the review page, with the labels the patient saw."""
    shown = []
    for name in fields_of(code, answers):
        if name in NOT_SUMMED:
            continue
        field = form[name]
        if hasattr(field, "choices"):
            # The choices, not the field's options: iterating the field builds a field for
            # each option (a third of the review's time, for the few that are ticked).
            picked = [str(choice.label) for choice in field.iter_choices() if choice.selected]
            text: object = picked if field.type == "MultiCheckboxField" else "".join(picked)
        else:
            text = field.data
        shown.append(Answer(field.label.text, text))
    return shown
