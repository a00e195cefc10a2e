"""What patients and staff do on the pages, for the browser tests (one copy, used by all).

The helpers find every control the way a screen-reader user does: fields by their label,
choices by their group's legend, buttons and links by their name. The ``key_*`` helpers use
the keyboard only (Tab, arrow keys, Space, Enter, typing). Waits use the default timeout set
once in ``tests/e2e/conftest.py``.
"""

from __future__ import annotations

import re
import time as clock
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pyotp
from babel.dates import format_date, format_datetime
from playwright.sync_api import Locator, Page, expect

from booking.requests import triage
from booking.timeutil import WHEN
from tests.e2e.conftest import LOCATION, SPECIALIST, LiveServer
from tests.support import PASSWORD, reach_draft

PATIENT_EMAIL = "erika.mustermann@example.com"
REFERENCE_RE = re.compile(r"^SC-[2-9A-Z]{4}-[2-9A-Z]{4}$")
# The first step's questions, as an English-speaking patient reads them.
RED_FLAGS = [str(flag.question) for flag in triage.ASKED]
SADDLE_NUMBNESS = str(triage.BY_CODE["saddle_numbness"].question)
CANCER_HISTORY = str(triage.BY_CODE["cancer_history"].question)
# The main problems a patient can name, as the form spells them.
LOWER_BACK = "My lower back (the pain may spread into a leg)"
NECK = "My neck (the pain may spread into an arm)"
# Enough for the longest walk through the request form (a few hundred tab stops).
MAX_TABS = 400


# --- what the patient reads ------------------------------------------------------------------


# English as written where the test clinic is (Berlin): booking.timeutil.dates_locale.
DATES_LOCALE = "en_DE"


def clinic_day(server: LiveServer, days_ahead: int) -> date:
    """A day at the clinic after the minimum notice and inside the picker's two weeks."""
    return datetime.now(server.tz).date() + timedelta(days=days_ahead)


def day_legend(day: date) -> str:
    """A day as the picker names its group of times, e.g. "Friday, 5 June 2026"."""
    return format_date(day, "full", locale=DATES_LOCALE)


def show_day(page: Page, day: date) -> None:
    """On the patient's time picker, open one day's times from the list of days."""
    days = page.get_by_role("navigation", name="Days with open times")
    name = format_date(day, "EEE d MMM", locale=DATES_LOCALE)
    days.get_by_role("link", name=re.compile(rf"^{re.escape(name)} · ")).click()
    expect(days.locator("[aria-current=date]")).to_contain_text(name)


def slot_label(hh_mm: str) -> str:
    return f"{hh_mm} · {SPECIALIST} · {LOCATION}"


def full_time(server: LiveServer, day: date, hh_mm: str) -> str:
    """A time as the pages and emails spell it out in full."""
    starts_at = datetime.combine(day, time.fromisoformat(hh_mm), tzinfo=server.tz)
    return format_datetime(starts_at.astimezone(UTC), WHEN, tzinfo=server.tz, locale=DATES_LOCALE)


def lasting_time(times: Locator) -> Locator:
    """The earliest time offered that stays open while a test runs: the second when there
    are two. The very first may pass the clinic's minimum notice a moment later (it is then
    refused as "not available"); the next is a whole slot further away."""
    radios = times.get_by_role("radio")
    return radios.nth(1) if radios.count() > 1 else radios.first


def slot_time(server: LiveServer, slot: Locator) -> str:
    """The full time of a slot's radio button (its value ends in the start's epoch)."""
    epoch = int(slot.get_attribute("value").rsplit(".", 1)[1])
    starts_at = datetime.fromtimestamp(epoch, tz=UTC)
    return format_datetime(starts_at, WHEN, tzinfo=server.tz, locale=DATES_LOCALE)


def page_width(page: Page) -> int:
    # Measured before the stylesheets arrive, an unstyled page can overflow: wait for them.
    page.wait_for_load_state("load")
    return page.evaluate("document.documentElement.scrollWidth")


def cells_beyond_the_screen(page: Page) -> list[str]:
    """The table cells (header row aside) whose right edge lies beyond the window's: there
    only by scrolling a box sideways, or not seen at all."""
    width = page.evaluate("window.innerWidth")
    beyond = []
    for cell in page.locator("tbody td, tbody th").all():
        box = cell.bounding_box()
        if box is not None and box["x"] + box["width"] > width + 0.5:
            beyond.append(
                f"{cell.inner_text().strip()[:40]!r} ends at {box['x'] + box['width']:.0f} px"
            )
    return beyond


def shown_reference(page: Page) -> str:
    reference = page.get_by_text(REFERENCE_RE)
    expect(reference).to_be_visible()
    return reference.inner_text().strip()


# --- the request form, by label --------------------------------------------------------------


def group(page: Page | Locator, legend: str) -> Locator:
    """The fieldset whose legend is exactly ``legend``, with or without "(optional)": a group
    of checkboxes, or of radio buttons (role radiogroup)."""
    name = re.compile(rf"^{re.escape(legend)}(?: \(optional\))?$")
    return page.get_by_role("group", name=name).or_(page.get_by_role("radiogroup", name=name))


def choose(page: Page, legend: str, *options: str) -> None:
    """Tick the radio button or checkboxes labelled ``options`` in the group ``legend``."""
    for option in options:
        group(page, legend).get_by_label(option, exact=True).check()


def fill_about_you(
    page: Page, *, name: str = "Erika Mustermann", email: str = PATIENT_EMAIL
) -> None:
    page.get_by_label("Full name", exact=True).fill(name)
    page.get_by_label("Date of birth", exact=True).fill("1970-05-17")
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Phone number", exact=True).fill("+49 30 901820")
    choose(page, "How should we contact you?", "Email")


def fill_symptoms(page: Page, region: str = LOWER_BACK) -> None:
    """The symptoms (the steps' "Your symptoms"), with ``region`` the main problem."""
    choose(page, "Where does it hurt?", "Lower back", "Leg")
    choose(page, "Where is your main problem?", region)
    choose(page, "Which side?", "Left")
    choose(page, "How long have you had this pain?", "3 to 12 months")
    choose(page, "Does the pain spread into your arm or leg?", "Yes")
    choose(page, "Do you have numbness or tingling?", "Yes")
    choose(page, "Do you have weakness in an arm or leg?", "No")


def fill_history(page: Page, each_part: Callable[[], None] = lambda: None) -> None:
    """The health and treatment questions (the steps' "Health and treatment"), part by part:
    what is wrong and what was tried, then scans, medicines and general health; it ends on the last
    part (the caller saves it). ``each_part`` runs as each part opens."""
    expect(page.get_by_role("heading", level=1)).to_contain_text("(part 1 of 2)")
    each_part()
    choose(page, "Has a doctor told you what it is?", "Herniated (slipped) disc")
    choose(page, "Treatment you have already had", "Physiotherapy", "Pain medication")
    next_part(page, 2, 2)
    each_part()
    choose(page, "Scans you have already had", "MRI")
    page.get_by_label("When were the scans done?").fill("MRI in March 2026")
    page.get_by_label("Medicines you take now").fill("Ibuprofen 400 mg")
    choose(page, "Do you take blood thinners (anticoagulants)?", "No")
    choose(page, "Do you have diabetes?", "No")
    choose(page, "Do you smoke?", "Never smoked")


# The pain scores each main problem asks, in page order, with the answers given.
PAIN_SCORES = {
    LOWER_BACK: [
        ("Back pain right now", "5"),
        ("Back pain at its worst in the last week", "8"),
        ("Leg pain right now", "4"),
        ("Leg pain at its worst in the last week", "7"),
    ],
    NECK: [
        ("Neck pain right now", "4"),
        ("Neck pain at its worst in the last week", "6"),
        ("Arm pain right now", "2"),
        ("Arm pain at its worst in the last week", "3"),
    ],
}


def rate_pain(page: Page, region: str = LOWER_BACK) -> None:
    """The pain scores of the main problem ``region`` (their part of the form)."""
    for legend, score in PAIN_SCORES[region]:
        choose(page, legend, score)


def answer_red_flags(page: Page, yes: str | None = None, *, send: bool = True) -> None:
    """The first step: every question "No" but ``yes``; then Continue (unless not ``send``)."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Request a spine evaluation")
    expect(page.get_by_text("Before you start: questions about urgent symptoms")).to_be_visible()
    for question in RED_FLAGS:
        choose(page, question, "Yes" if question == yes else "No")
    if send:
        page.get_by_role("button", name="Continue").click()


def give_consent(page: Page) -> None:
    page.get_by_role("checkbox", name="I have read the privacy notice").check()
    page.get_by_role("checkbox", name="I agree to be contacted about my request").check()


def document_file(document: Locator) -> Locator:
    """The file field of one document's group ("File", or "File (optional)")."""
    return document.get_by_label(re.compile(r"^File( \(optional\))?$"))


def attach_document(page: Page, pdf: Path, description: str = "MRI report, lumbar spine") -> None:
    # Ten rows offer "File": the patient must be able to tell Document 1 from the others.
    document = page.get_by_role("group", name="Document 1")
    document_file(document).set_input_files(pdf)
    document.get_by_label("What is it?").fill(description)


TIMES_UPDATED = "The open times below have been updated."


def pick_type(page: Page, appointment_type: str) -> None:
    """Choose the type on the time picker: with JavaScript its times replace the others at once
    (and the page says so to screen readers); without, "Show the times" loads them."""
    # The picker's script (deferred) must listen before the choice, and hide the button: a
    # page whose address has changed may not have run it yet.
    page.wait_for_load_state("load")
    option = group(page, "Type of appointment").get_by_label(appointment_type, exact=True)
    if option.is_checked():
        return
    option.check()
    button = page.get_by_role("button", name="Show the times")
    if button.is_visible():
        button.click()
    else:
        expect(page.locator("#picker-status")).to_have_text(TIMES_UPDATED)
    expect(group(page, "Type of appointment").get_by_label(appointment_type)).to_be_checked()


def pick_first_time(
    page: Page, server: LiveServer, appointment_type: str, red_flag: str | None = None
) -> str:
    """From the home page: the questions about urgent symptoms (all "No" but ``red_flag``),
    then choose the type, take the earliest open time, continue to the steps' first (the
    time, shown). Returns the chosen time as the pages spell it."""
    page.goto(server("/"))
    page.get_by_role("link", name="Request an evaluation").first.click()
    expect(page).to_have_url(server("/request/start"))
    answer_red_flags(page, yes=red_flag)
    expect(page).to_have_url(server("/request/time"))
    pick_type(page, appointment_type)
    times = page.get_by_role("form", name=re.compile(r"^Open times from "))
    earliest = lasting_time(times)
    earliest.check()
    chosen = slot_time(server, earliest)
    times.get_by_role("button", name="Continue with this time").click()
    expect_step(page, "time")
    expect(page.locator("#chosen-slot").get_by_text(chosen, exact=True)).to_be_visible()
    return chosen


# --- the request as steps --------------------------------------------------------------------

# The steps after the questions about urgent symptoms: their address and their name.
STEPS = {
    "time": "Time",
    "about": "About you",
    "symptoms": "Your symptoms",
    "function": "Pain and daily life",
    "history": "Health and treatment",
    "documents": "Documents",
    "review": "Check and send",
}
STEP_CODES = list(STEPS)
DESCRIPTION = "MRI report, lumbar spine"


def expect_step(page: Page, code: str) -> None:
    """The page is step ``code``: its heading names it, and so does the list of steps."""
    number, name = STEP_CODES.index(code) + 1, STEPS[code]
    heading = f"Step {number} of {len(STEPS)}: {name}"
    # (A step shown in parts says which: "... (part 2 of 3)"; the time step's page, what it
    # is for, to tell it from the time picker's.)
    subtitle = r" \(part \d+ of \d+\)| Your time, and when else you could come| When you could come"
    pattern = re.compile(rf"^{re.escape(heading)}({subtitle})?$")
    expect(page.get_by_role("heading", level=1)).to_have_text(pattern)
    steps = page.get_by_role("navigation", name="Steps of your request")
    expect(steps.locator("[aria-current=step]")).to_have_text(f"{number}. {name}")


def save_and_continue(page: Page, then: str) -> None:
    """Press "Save and continue" and land on step ``then``."""
    page.get_by_role("button", name="Save and continue").click()
    expect_step(page, then)


def documents_added(page: Page) -> Locator:
    """The documents step's list of the files already in the request."""
    return page.get_by_role("region", name="Documents added").get_by_role("listitem")


def add_document(page: Page, path: Path, description: str = DESCRIPTION) -> None:
    """On the documents step: choose the file and say what it is. With scripts it goes up
    the moment it is chosen, and what it is is typed next to it in the list (the page's next
    button saves it); without, it is typed first and "Add these files" sends both."""
    # The upload script (deferred) listens for the choice once the page has loaded.
    page.wait_for_load_state("load")
    shared = page.locator("#description")  # "What is it?" of the files to choose
    scripted = not shared.is_visible()
    if not scripted:
        shared.fill(description)
    page.get_by_label("Choose one or more files").set_input_files(path)
    if not scripted:
        page.get_by_role("button", name="Add these files").click()
    listed = documents_added(page).filter(has_text=path.name)
    expect(listed).to_contain_text("Accepted")
    field = listed.get_by_label("What is it?")
    if scripted:
        field.fill(description)
    expect(field).to_have_value(description)


def parts_of_step(page: Page) -> int:
    """On the first part of a step shown in parts: how many parts it has."""
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("(part 1 of ")
    return int(re.search(r"part 1 of (\d+)", heading.inner_text()).group(1))


def next_part(page: Page, part: int, parts: int) -> None:
    """Press "Save and continue" on a part of a step shown in parts and land on ``part``."""
    page.get_by_role("button", name="Save and continue").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"(part {part} of {parts})")


def rate_function(
    page: Page, region: str = LOWER_BACK, each_part: Callable[[], None] = lambda: None
) -> None:
    """The function step, part by part: the pain scores, then one of the instrument's
    sections; it ends on the step's last part (the caller saves it). ``each_part`` runs as
    each part opens."""
    parts = parts_of_step(page)
    each_part()
    rate_pain(page, region)
    legend, statement = (
        ("Walking", "Pain prevents me from walking more than 1 mile (1.6 km)")
        if region == LOWER_BACK
        else ("Reading", "I can read as much as I want to with slight pain in my neck")
    )
    answered = False
    for part in range(2, parts + 1):
        next_part(page, part, parts)
        each_part()
        if group(page, legend).count():
            choose(page, legend, statement)
            answered = True
    assert answered, f"no part of the step asks {legend}"


def fill_steps_to_review(
    page: Page,
    *,
    document: Path | None = None,
    description: str = DESCRIPTION,
    region: str = LOWER_BACK,
) -> None:
    """From the time step (the page shown) to the review: every step's answers, saved."""
    expect_step(page, "time")
    save_and_continue(page, "about")
    fill_about_you(page)
    save_and_continue(page, "symptoms")
    fill_symptoms(page, region)
    save_and_continue(page, "function")
    rate_function(page, region)
    save_and_continue(page, "history")
    fill_history(page)
    save_and_continue(page, "documents")
    if document is not None:
        add_document(page, document, description)
    save_and_continue(page, "review")


def send_from_review(page: Page, heading: str = "Your request was sent") -> None:
    """On the review: consent, send, and the confirmation (its first heading ``heading``:
    an urgent request's page opens with its advice)."""
    expect_step(page, "review")
    give_consent(page)
    page.get_by_role("button", name="Send my request").click()
    expect(page).to_have_url(re.compile(r"/request/submitted$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(heading)


def open_review_sections(page: Page) -> None:
    """On the review: open every step's folded answers."""
    folded = page.get_by_role("main").locator("details.review-answers")
    for summary in folded.locator("> summary").all():
        summary.click()
    expect(page.get_by_role("main").locator("details.review-answers:not([open])")).to_have_count(0)
    assert folded.count() > 0


def walk_steps(
    page: Page,
    *,
    document: Path | None = None,
    description: str = DESCRIPTION,
    region: str = LOWER_BACK,
) -> None:
    """From the time step through the review, then send (``document`` added on its step)."""
    fill_steps_to_review(page, document=document, description=description, region=region)
    send_from_review(page)


# The six-week follow-up's answers (the questionnaire of the lower back): much less pain and
# disability than at the request (back pain 5 / 8, leg pain 4 / 7, ODI 50 %:
# tests.factories.make_request).
FOLLOWUP_PAIN = {
    "back_pain_now": "1",
    "back_pain_worst": "3",
    "leg_pain_now": "0",
    "leg_pain_worst": "2",
}


def answer_followup_improved(page: Page) -> None:
    """On the follow-up questionnaire (lower back), in any language: answers much better than
    the request's (``FOLLOWUP_PAIN``; nine of the ten ODI sections, 5 of 45 points: 11 %);
    not sent yet."""
    for name, value in FOLLOWUP_PAIN.items():
        page.locator(f"input[name={name}][value='{value}']").check()
    for section in ("pain_intensity", "personal_care", "lifting", "walking", "sitting"):
        page.locator(f"input[name=odi_{section}][value='1']").check()
    for section in ("standing", "sleeping", "social_life", "travelling"):
        page.locator(f"input[name=odi_{section}][value='0']").check()
    page.locator("input[name=gpe][value='2']").check()
    page.locator("input[name=satisfaction][value='5']").check()


# --- the keyboard ----------------------------------------------------------------------------


def has_focus(target: Locator) -> bool:
    """Whether the focus is on ``target`` or inside it (a group of radio buttons)."""
    return target.evaluate("el => el.contains(document.activeElement)")


def tab_to(page: Page, target: Locator, what: str) -> None:
    """Press Tab, as a keyboard user does, until the focus is on or in ``target``."""
    for _ in range(MAX_TABS):
        if has_focus(target):
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {what}")


def key_type(page: Page, label: str, value: str) -> None:
    """Tab to the field labelled ``label`` and type ``value`` (a date as the browser's
    date field takes it from the keyboard: month, day, year)."""
    field = page.get_by_label(label, exact=True)
    tab_to(page, field, label)
    if field.get_attribute("type") == "date":
        year, month, day = value.split("-")
        page.keyboard.type(f"{month}{day}{year}")
    else:
        page.keyboard.type(value)
    expect(field).to_have_value(value)


def key_choose(page: Page, legend: str, *options: str) -> None:
    """Choose ``options`` in the group ``legend`` from the keyboard: Tab to a checkbox and
    press Space; Tab into a radio group, move with the arrow keys, confirm with Space."""
    fieldset = group(page, legend)
    for option in options:
        target = fieldset.get_by_label(option, exact=True)
        if target.get_attribute("type") == "radio":
            tab_to(page, fieldset, legend)
            for _ in range(fieldset.get_by_role("radio").count()):
                if has_focus(target):
                    break
                page.keyboard.press("ArrowDown")
            assert has_focus(target), f"the arrow keys cannot reach {legend}: {option}"
            page.keyboard.press("Space")
            expect(target).to_be_checked()
        else:
            key_tick(page, target, f"{legend}: {option}")


def key_tick(page: Page, checkbox: Locator, what: str) -> None:
    tab_to(page, checkbox, what)
    page.keyboard.press("Space")
    expect(checkbox).to_be_checked()


def key_press_button(page: Page, name: str) -> None:
    button = page.get_by_role("button", name=name)
    tab_to(page, button, name)
    page.keyboard.press("Enter")


def key_take_earliest_time(page: Page, server: LiveServer) -> str:
    """On the time picker, Tab into the times (onto the earliest), Space to take it, then
    "Continue with this time" by keyboard; returns the time as the page shows it."""
    times = page.get_by_role("form", name=re.compile(r"^Open times from "))
    first = times.get_by_role("radio").first
    tab_to(page, first, "the earliest time")
    page.keyboard.press("Space")
    expect(first).to_be_checked()
    earliest = lasting_time(times)
    if times.get_by_role("radio").count() > 1:  # the next (lasting_time): an arrow takes it
        page.keyboard.press("ArrowRight")
        expect(earliest).to_be_checked()
    expect(times.get_by_role("radio").and_(page.locator(":checked"))).to_have_count(1)
    chosen = slot_time(server, earliest)
    key_press_button(page, "Continue with this time")
    expect_step(page, "time")
    expect(page.get_by_text(chosen, exact=True)).to_be_visible()
    return chosen


def expect_sent(page: Page, server: LiveServer, documents: int = 1) -> str:
    """The confirmation page after a send; returns the reference it shows."""
    expect(page).to_have_url(server("/request/submitted"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Your request was sent")
    if documents:
        expect(page.get_by_text(f"We received {documents} document.")).to_be_visible()
    return shown_reference(page)


def _ignore_file_chooser(_chooser: object) -> None:
    """A listener that keeps Playwright's file-dialog interception on (see key_attach)."""


def key_attach(page: Page, file_input: Locator, path: Path, what: str) -> None:
    """Tab to a file field and press Space: the browser opens its file dialog, where the
    patient picks ``path`` (the dialog itself belongs to the operating system)."""
    # Playwright intercepts file dialogs only once a listener exists, and turning that on is
    # asynchronous: listen first (tabbing takes long enough), or Space may open a real dialog
    # that headless chromium never reports.
    page.on("filechooser", _ignore_file_chooser)
    tab_to(page, file_input, what)
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    chooser.value.set_files(path)


def key_save_and_continue(page: Page, then: str) -> None:
    key_press_button(page, "Save and continue")
    expect_step(page, then)


def key_walk_steps(page: Page, *, document: Path | None = None) -> None:
    """``walk_steps``' required answers (and ``document``), from the keyboard alone, in page
    order: from the time step (the page shown) through the review, then send."""
    expect_step(page, "time")
    key_save_and_continue(page, "about")
    key_type(page, "Full name", "Erika Mustermann")
    key_type(page, "Date of birth", "1970-05-17")
    key_type(page, "Email address", PATIENT_EMAIL)
    key_type(page, "Phone number", "+49 30 901820")
    key_choose(page, "How should we contact you?", "Email")
    key_save_and_continue(page, "symptoms")
    key_choose(page, "Where does it hurt?", "Lower back", "Leg")
    key_choose(page, "Where is your main problem?", LOWER_BACK)
    key_choose(page, "How long have you had this pain?", "3 to 12 months")
    key_choose(page, "Does the pain spread into your arm or leg?", "Yes")
    key_choose(page, "Do you have numbness or tingling?", "Yes")
    key_choose(page, "Do you have weakness in an arm or leg?", "No")
    key_save_and_continue(page, "function")
    parts = parts_of_step(page)
    for legend, score in PAIN_SCORES[LOWER_BACK]:
        key_choose(page, legend, score)
    for _part in range(parts - 1):  # its next parts: the ODI's sections (optional)
        key_save_and_continue(page, "function")
    key_save_and_continue(page, "history")
    key_save_and_continue(page, "history")  # part 1: nothing required
    key_type(page, "When were the scans done? (optional)", "MRI in March 2026")  # part 2
    key_choose(page, "Do you take blood thinners (anticoagulants)?", "No")
    key_choose(page, "Do you have diabetes?", "No")
    key_choose(page, "Do you smoke?", "Never smoked")
    key_save_and_continue(page, "documents")
    if document is not None:
        key_add_document(page, document)
    key_save_and_continue(page, "review")
    # A step's folded answers open from the keyboard.
    about = page.get_by_role("region", name="About you")
    tab_to(page, about.locator("summary"), "the answers about you")
    page.keyboard.press("Enter")
    expect(about.locator("details")).to_have_attribute("open", "")
    expect(about.get_by_text(PATIENT_EMAIL, exact=True)).to_be_visible()
    key_give_consent(page)
    key_press_button(page, "Send my request")


def key_add_document(page: Page, path: Path, description: str = DESCRIPTION) -> None:
    """Tab to the file field and press Space for the file dialog. Without scripts what it is
    is typed first (the field before it) and "Add these files" sends both (Tab on to it,
    Enter); with scripts the file goes up as it is chosen, and what it is is typed next to it
    in the list."""
    page.on("filechooser", _ignore_file_chooser)  # see key_attach: before any key
    page.wait_for_load_state("load")  # the upload script listens once the page has loaded
    shared = page.locator("#description")  # "What is it?" of the files to choose
    scripted = not shared.is_visible()
    if not scripted:
        tab_to(page, shared, "What is it?")
        page.keyboard.type(description)
        expect(shared).to_have_value(description)
    file_input = page.get_by_label("Choose one or more files")
    key_attach(page, file_input, path, "Choose one or more files")
    if not scripted:
        key_press_button(page, "Add these files")
    listed = documents_added(page).filter(has_text=path.name)
    expect(listed).to_contain_text("Accepted")
    field = listed.get_by_label("What is it?")
    if scripted:
        tab_to(page, field, "What is it? next to the file")
        page.keyboard.type(description)
    expect(field).to_have_value(description)


def key_answer_red_flags(page: Page) -> None:
    """The first step from the keyboard: every question "No", then Continue."""
    for question in RED_FLAGS:
        key_choose(page, question, "No")
    key_press_button(page, "Continue")


def key_give_consent(page: Page) -> None:
    for consent in ("I have read the privacy notice", "I agree to be contacted about my request"):
        key_tick(page, page.get_by_role("checkbox", name=consent), consent)


# --- staff -----------------------------------------------------------------------------------


def submit_sign_in(page: Page, email: str, password: str = PASSWORD) -> None:
    """On the staff sign-in page: fill in the address and password and press Sign in."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Staff sign-in")
    page.get_by_label("Email address", exact=True).fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def submit_sign_in_code(page: Page, code: str) -> None:
    """On the sign-in code page: type ``code`` and press Sign in, waiting for the server's
    answer (checking the code and starting the session) however long a busy machine takes."""
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign-in code")
    page.get_by_label("Code", exact=True).fill(code)
    with page.expect_response(
        lambda response: response.request.method == "POST" and "/staff/login/code" in response.url
    ):
        page.get_by_role("button", name="Sign in").click()


def sign_in(
    page: Page,
    server: LiveServer,
    email: str,
    *,
    password: str = PASSWORD,
    totp_secret: str | None = None,
    landing: str | re.Pattern[str] = "Triage queue",
) -> None:
    """Sign in at the staff login page; with ``totp_secret``, answer the sign-in code page
    with the code an authenticator app would show now."""
    page.goto(server("/staff/"))
    expect(page).to_have_url(re.compile(r"/staff/login(\?|$)"))
    submit_sign_in(page, email, password)
    if totp_secret is not None:
        # The next time step's code: within the allowed clock drift, and never a code already
        # used (a code is accepted once, and enrolment may have used this step's).
        submit_sign_in_code(page, pyotp.TOTP(totp_secret).at(clock.time() + 30))
    expect(page.get_by_role("heading", level=1)).to_have_text(landing)


def reach(page: Page, server: LiveServer, code: str) -> None:
    """Note the draft of ``page``'s browser as having reached step ``code``, as though the
    patient had come this far (``tests.support.reach``): a step not reached does not open,
    and these tests are about the step, not the way to it."""
    from booking.patients.views import DRAFT_KEY

    app = server.app
    name = app.config["SESSION_COOKIE_NAME"]
    [cookie] = [c["value"] for c in page.context.cookies(server.url) if c["name"] == name]
    session = app.session_interface.get_signing_serializer(app).loads(cookie)  # type: ignore[attr-defined]
    reach_draft(app, session.get(DRAFT_KEY), code)
