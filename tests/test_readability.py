"""The information pages stay readable: a reading age of about 11, in English and Spanish.

Measured with textstat on each page's own text as a reader gets it (the rendered page, without
the header, navigation, emergency banner, publishing details or feedback form): the
Flesch-Kincaid grade for English (US school grade; a reading age of 11 is about grade 6) and
Fernández-Huerta's ease for Spanish (0-100, higher is easier; 70-80 is "fairly easy", about
11-12 years). Each page has its own limit, set a little above its current score, so a later
edit that makes a page harder fails here. No sentence may be longer than 25 words.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
import textstat
from flask.testing import FlaskClient

# Page -> (highest Flesch-Kincaid grade in English, lowest Fernández-Huerta ease in Spanish).
LIMITS = {
    "/": (5.5, 77.0),
    "/info/evaluation": (5.5, 80.0),
    "/info/conditions": (6.0, 80.0),
    "/info/treatments": (7.0, 76.0),
    "/info/prepare": (6.5, 76.0),
}
MAX_WORDS_PER_SENTENCE = 25
BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "dt", "dd"}


class _PageText(HTMLParser):
    """The text inside ``<article class="page-text">``, one block (paragraph, list item,
    heading) per line; a block without closing punctuation ends as a sentence."""

    def __init__(self) -> None:
        super().__init__()
        self.depth = 0
        self.blocks: list[str] = []
        self.current: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.depth:
            self.depth += tag == "article"
        elif tag == "article" and "page-text" in (dict(attrs).get("class") or ""):
            self.depth = 1

    def handle_endtag(self, tag: str) -> None:
        if not self.depth:
            return
        if tag in BLOCKS:
            self._close()
        if tag == "article":
            self.depth -= 1

    def handle_data(self, data: str) -> None:
        if self.depth:
            self.current.append(data)

    def _close(self) -> None:
        text = " ".join("".join(self.current).split())
        self.current = []
        if text:
            self.blocks.append(text if text[-1] in ".?!:" else text + ".")


def page_text(client: FlaskClient, path: str, lang: str) -> str:
    page = client.get(path, query_string={"lang": lang}).get_data(as_text=True)
    parser = _PageText()
    parser.feed(page)
    assert parser.blocks, f"no page text found on {path}"
    return "\n".join(parser.blocks)


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.?!:])\s+", text) if s.strip()]


@pytest.mark.parametrize("path", LIMITS)
def test_english_pages_read_at_about_age_11(client: FlaskClient, path: str) -> None:
    text = page_text(client, path, "en")
    textstat.set_lang("en_US")
    grade = textstat.flesch_kincaid_grade(text)
    assert grade <= LIMITS[path][0], f"{path} reads at grade {grade:.1f}"


@pytest.mark.parametrize("path", LIMITS)
def test_spanish_pages_read_at_about_age_11(client: FlaskClient, path: str) -> None:
    text = page_text(client, path, "es")
    textstat.set_lang("es")
    ease = textstat.fernandez_huerta(text)
    assert ease >= LIMITS[path][1], f"{path} has a Fernández-Huerta ease of {ease:.1f}"


@pytest.mark.parametrize("lang", ["en", "es"])
@pytest.mark.parametrize("path", LIMITS)
def test_no_sentence_is_longer_than_25_words(client: FlaskClient, path: str, lang: str) -> None:
    long = [
        s
        for s in sentences(page_text(client, path, lang))
        if len(s.split()) > MAX_WORDS_PER_SENTENCE
    ]
    assert not long, long


def test_the_measure_tells_hard_text_from_plain_text() -> None:
    # The check itself can fail: a dense sentence scores far above the limits.
    textstat.set_lang("en_US")
    hard = (
        "Minimally invasive decompressive laminectomy demonstrates comparable long-term "
        "functional outcomes relative to conventional open procedures, notwithstanding "
        "increased intraoperative fluoroscopic radiation exposure."
    )
    assert textstat.flesch_kincaid_grade(hard) > max(limit for limit, _ in LIMITS.values())


@pytest.mark.parametrize(
    "overclaim",
    [
        "explains what is causing your pain",
        "when a nerve is badly pressed",
        "if the nerves are narrowed",
        "leads to long-lasting",
        "Crippling",
    ],
)
def test_the_pages_drop_the_overclaims_found_in_review(client: FlaskClient, overclaim: str) -> None:
    for path in LIMITS:
        assert overclaim not in client.get(path).get_data(as_text=True), path
