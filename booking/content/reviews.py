"""Who checked each information page, when, against which sources: the one place to change.

The Patient Information Forum's standard for health information asks each page to say who
wrote it, who checked it clinically, what it is based on, when it was last reviewed and when
it will be reviewed next. The names and roles are settings (``CONTENT_AUTHOR``,
``CONTENT_REVIEWER``); the dates and sources are here, per page. When the clinic's medical
lead reviews a page, change its dates here in the same commit as the text
(docs/clinical-content.md lists every text they read).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Source:
    title: str  # as published (English: the sources are English-language guidance)
    url: str


@dataclass(frozen=True)
class Review:
    last_reviewed: date
    next_review: date
    sources: tuple[Source, ...]


NICE_NG59 = Source(
    "NICE guideline NG59: Low back pain and sciatica in over 16s: assessment and management "
    "(2016, updated 2020)",
    "https://www.nice.org.uk/guidance/ng59",
)
NHS_BACK_PAIN = Source("NHS: Back pain", "https://www.nhs.uk/conditions/back-pain/")
NHS_SCIATICA = Source("NHS: Sciatica", "https://www.nhs.uk/conditions/sciatica/")
NHS_SLIPPED_DISC = Source("NHS: Slipped disc", "https://www.nhs.uk/conditions/slipped-disc/")
NHS_STENOSIS = Source("NHS: Spinal stenosis", "https://www.nhs.uk/conditions/spinal-stenosis/")
NHS_SPONDYLOLISTHESIS = Source(
    "NHS: Spondylolisthesis", "https://www.nhs.uk/conditions/spondylolisthesis/"
)
NHS_CAUDA_EQUINA = Source(
    "NHS: Cauda equina syndrome", "https://www.nhs.uk/conditions/cauda-equina-syndrome/"
)

# Revised together against the findings (#21) on the day the texts last changed (a
# date in the future is refused by tests/test_page_feedback.py); next review within a year.
_REVIEWED, _NEXT = date(2026, 12, 5), date(2027, 12, 5)

REVIEWS: dict[str, Review] = {
    "home": Review(_REVIEWED, _NEXT, (NICE_NG59, NHS_BACK_PAIN)),
    "evaluation": Review(_REVIEWED, _NEXT, (NICE_NG59, NHS_BACK_PAIN)),
    "conditions": Review(
        _REVIEWED,
        _NEXT,
        (NICE_NG59, NHS_SLIPPED_DISC, NHS_STENOSIS, NHS_SPONDYLOLISTHESIS, NHS_SCIATICA),
    ),
    "treatments": Review(_REVIEWED, _NEXT, (NICE_NG59, NHS_SLIPPED_DISC, NHS_SCIATICA)),
    "prepare": Review(_REVIEWED, _NEXT, (NICE_NG59, NHS_CAUDA_EQUINA)),
}
