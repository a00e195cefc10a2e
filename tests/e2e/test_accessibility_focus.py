"""The keyboard's way through the pages: every tab stop shows the focus, the first one
skips to the main content; and the checks themselves see a broken page. What is checked:
``tests/e2e/accessibility.py``.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import accessibility
from tests.e2e.accessibility import Site, axe_failures, unnamed_controls

pytestmark = pytest.mark.e2e

# The demo clinic (seeded once for this module) and a fresh browser for each test.
site = accessibility.site
patient = accessibility.patient


# --- the focus is always visible -------------------------------------------------------------


# For the focused element: what it is, its outline, and the colour behind the outline (the
# first opaque background among its ancestors), with the contrast between the two.
FOCUS_STYLE_JS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  // A date or time field whose own calendar button has the focus: the browser draws that
  // ring itself, inside the field, out of the page's reach (a stop of its own in chromium).
  if (!el.matches(":focus")) return {what: el.tagName, outline: null, contrast: null};
  const style = getComputedStyle(el);
  const rgb = c => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  let bg = [255, 255, 255];
  for (let node = el.parentElement; node; node = node.parentElement) {
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] === 1)) { bg = c.slice(0, 3); break; }
  }
  const fg = rgb(style.outlineColor).slice(0, 3);
  const [hi, lo] = [lum(fg), lum(bg)].sort((a, b) => b - a);
  return {
    what: el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") + " " +
          (el.getAttribute("aria-label") || el.textContent || el.name || "").trim().slice(0, 40),
    outline: style.outlineStyle !== "none" ? parseFloat(style.outlineWidth) : 0,
    contrast: (hi + 0.05) / (lo + 0.05),
  };
}"""
MAX_TAB_STOPS = 400


def focus_problems(page: Page) -> list[str]:
    """Tab through every stop of the page; the ones without a clear focus indicator (an
    outline of at least 2 px with at least 3:1 contrast against what is behind it)."""
    problems, seen = [], 0
    page.locator("body").focus()
    for _ in range(MAX_TAB_STOPS):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUS_STYLE_JS)
        if focused is None:  # past the last stop
            break
        seen += 1
        if focused["outline"] is None:
            continue
        if focused["outline"] < 2 or focused["contrast"] < 3:
            problems.append(
                f"{focused['what']}: outline {focused['outline']} px, "
                f"contrast {focused['contrast']:.1f}:1"
            )
    assert seen > 1, "no tab stops found"
    return problems


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/request/start",
        "/request/time",
        "/request/steps/about",
        "/request/steps/function",
        "/request/steps/documents",
        "/request/steps/review",
        "/request/later",
        "{manage}",
        "{manage}/reschedule",
        "/staff/login",
    ],
)
def test_every_tab_stop_on_patient_pages_shows_the_focus(
    path: str, site: Site, patient: Page
) -> None:
    site.visit(patient, path)
    problems = focus_problems(patient)
    assert not problems, "tab stops without a visible focus:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    "path",
    ["/staff/", "/staff/requests/{reference}", "/staff/calendar", "/staff/admin/scheduling/"],
)
def test_every_tab_stop_on_staff_pages_shows_the_focus(path: str, site: Site) -> None:
    page = site.admin
    page.goto(site(path.format(reference=site.reference)))
    problems = focus_problems(page)
    assert not problems, "tab stops without a visible focus:\n" + "\n".join(problems)


# --- the checks themselves see problems ------------------------------------------------------


def test_the_checks_report_an_unlabelled_field_and_a_hidden_focus(
    site: Site, patient: Page
) -> None:
    """Break a real page on purpose: every check above must notice (a scan that cannot fail
    would pass every page)."""
    page = patient
    page.goto(site("/privacy"))
    page.evaluate(
        """() => {
          const field = document.createElement("input");
          field.type = "text";
          field.id = "unlabelled";
          document.querySelector("main").append(field);
          const link = document.querySelector("footer a");
          link.style.setProperty("outline", "none", "important");
        }"""
    )
    failures = axe_failures(page)
    assert any(" label: " in failure and "#unlabelled" in failure for failure in failures), failures
    assert any(name.startswith("textbox") for name in unnamed_controls(page))
    assert any("Privacy notice: outline 0 px" in problem for problem in focus_problems(page))


@pytest.mark.parametrize("path", ["/request/start", "/request/steps/about", "/staff/login"])
def test_the_first_tab_stop_skips_to_the_main_content(path: str, site: Site, patient: Page) -> None:
    page = patient
    site.visit(page, path)
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    expect(skip).to_be_focused()
    expect(skip).to_be_visible()  # hidden until focused, then shown
    page.keyboard.press("Enter")
    expect(page.get_by_role("main")).to_be_focused()
    # The next Tab goes on inside the content, past the header's links.
    page.keyboard.press("Tab")
    assert page.evaluate("document.querySelector('main').contains(document.activeElement)")
