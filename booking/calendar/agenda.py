"""The agenda: the specialists' days as a time grid of appointments (held and confirmed), free
time, breaks and time off.

Reading is a fixed number of queries whatever the period or the clinic's history: the
appointments (one query, ``agenda_appointments``) and the working time (two,
``working_time``); everything else is computed here, in UTC.

The grid's rows are steps of ``STEP_MINUTES`` of the clinic's wall-clock time, so the same
time of day sits on the same row in every column of a week, also across a clock change: on a
23-hour day the hour the clocks skip stays empty; a board with a 25-hour day has the repeated
hour twice, one band after the other (its labels and times say their zone, CEST then CET), so
two appointments at 02:30 sit an hour apart as they are, and the other days leave the second
band empty. The page's CSS has one class per grid
line (``grid_css``): the strict Content-Security-Policy allows no inline style.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import pairwise

from flask import current_app
from flask_babel import gettext as _

from booking.openinghours import working_hours_setting
from booking.requests.lifecycle import status_label
from booking.requests.queries import agenda_appointments, can_see
from booking.scheduling.agenda import TimeOff, WorkWindow, working_time
from booking.scheduling.availability import clinic_settings
from booking.scheduling.models import Appointment, Location
from booking.staff.models import StaffUser
from booking.timeutil import END_OF_DAY, clinic_instants, from_clinic_local, to_clinic_tz

STEP_MINUTES = 5
DAY_MINUTES = 24 * 60
# Grid lines 1 .. LAST_LINE: a whole day of steps, and the hour a 25-hour day repeats.
LAST_LINE = (DAY_MINUTES + 60) // STEP_MINUTES + 1
LINES_PER_HOUR = 60 // STEP_MINUTES
# Two lines of an entry's text (2 x 1rem, and a held time's 2 px dashed border) need six grid
# lines of .45rem (app.css); a shorter entry wrapped its text and cut it off mid-line, so a
# 15-minute appointment showed its time and status but not whose it was.
SHORT_BELOW_LINES = 6
# How many whole lines of text a longer entry holds, in hundredths of a rem (app.css): a grid
# line is .45rem, a line of text 1rem (.8rem at line-height 1.25); its frame (1 px margin,
# at most 2 px of border above and below) is counted as .32rem. Its text is cut after the
# last whole line (line-clamp, .ag-lines-N), not through the middle of the next one. Beyond
# MAX_CLAMP_LINES no entry's text runs out of room, but one is cut there all the same.
GRID_LINE_HUNDREDTHS = 45
TEXT_LINE_HUNDREDTHS = 100
FRAME_HUNDREDTHS = 32
MAX_CLAMP_LINES = 30

Interval = tuple[datetime, datetime]


class EntryKind(enum.StrEnum):
    APPOINTMENT = "appointment"
    FREE = "free"
    BREAK = "break"
    TIME_OFF = "time-off"


@dataclass
class Entry:
    """One thing in a column, at its place in the grid (lines ``first_line``..``end_line``)."""

    kind: EntryKind
    starts_at: datetime
    ends_at: datetime
    # Clinic wall-clock times as the column reads them ("24:00", a zone on a clock change).
    start_text: str = ""
    end_text: str = ""
    first_line: int = 1
    end_line: int = 2
    appointment: Appointment | None = None
    shown: bool = True  # whether the reader may see whose appointment it is
    location: str | None = None
    reason: str | None = None
    during_time_off: bool = False

    @property
    def times(self) -> str:
        return f"{self.start_text}\N{EN DASH}{self.end_text}"

    @property
    def short(self) -> bool:
        """Too short on the grid for two lines of text (under 30 minutes): the entry shows one
        line, its start time and whose it is first, and the rest on focus or hover."""
        return self.end_line - self.first_line < SHORT_BELOW_LINES

    @property
    def text_lines(self) -> int:
        """How many whole lines of text the entry's place on the grid holds: where its text
        is longer, it is cut after the last of them (and opens whole on focus or hover)."""
        room = (self.end_line - self.first_line) * GRID_LINE_HUNDREDTHS - FRAME_HUNDREDTHS
        return max(1, min(MAX_CLAMP_LINES, room // TEXT_LINE_HUNDREDTHS))

    @property
    def held(self) -> bool:
        """A time a patient holds that staff have not confirmed yet."""
        return self.appointment is not None and self.appointment.request.is_unconfirmed

    @property
    def status_text(self) -> str:
        if self.appointment is None:
            return ""
        if self.held:
            return _("Held, not confirmed")
        return status_label(self.appointment.request.status).capitalize()


@dataclass
class Column:
    """One specialist's day."""

    day: date
    specialist: StaffUser
    entries: list[Entry]
    day_hours: int  # 23 or 25 on the days the clocks change

    @property
    def key(self) -> str:
        return f"{self.day.isoformat()}-{self.specialist.id}"

    @property
    def clock_change(self) -> str | None:
        if self.day_hours == 23:
            return _("23-hour day: the clocks go forward")
        if self.day_hours == 25:
            return _("25-hour day: the clocks go back")
        return None


@dataclass
class Board:
    """One grid: a specialist's days (``specialist`` set), or one day of several specialists
    side by side."""

    specialist: StaffUser | None
    columns: list[Column]
    hours: list[tuple[int, int, str]] = field(default_factory=list)  # (line, end line, "HH:00")
    last_line: int = LAST_LINE
    repeat: Repeat | None = None


@dataclass(frozen=True)
class Repeat:
    """The wall-clock minutes ``start``..``end`` that a 25-hour day's clocks go through twice,
    and the zone of each time round ("CEST", "CET")."""

    start: int
    end: int
    zones: tuple[str, str]

    @property
    def minutes(self) -> int:
        return self.end - self.start


@dataclass
class Agenda:
    boards: list[Board]
    appointments: int
    held: int

    @property
    def idle(self) -> bool:
        """Nobody works and nothing is booked: no free time and no appointment (time off
        alone leaves a day idle)."""
        return not any(
            e.kind in (EntryKind.APPOINTMENT, EntryKind.FREE)
            for board in self.boards
            for column in board.columns
            for e in column.entries
        )


# Intervals ----------------------------------------------------------------------------------


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _minus(intervals: Iterable[Interval], cuts: Iterable[Interval]) -> list[Interval]:
    """``intervals`` without any part of ``cuts``."""
    cuts = _merged(cuts)
    left: list[Interval] = []
    for start, end in intervals:
        for cut_start, cut_end in cuts:
            if cut_end <= start or cut_start >= end:
                continue
            if cut_start > start:
                left.append((start, cut_start))
            start = max(start, cut_end)
            if start >= end:
                break
        if start < end:
            left.append((start, end))
    return left


def _clip(interval: Interval, bounds: Interval) -> Interval | None:
    start, end = max(interval[0], bounds[0]), min(interval[1], bounds[1])
    return (start, end) if start < end else None


def _overlaps(a: Interval, b: Interval) -> bool:
    return a[0] < b[1] and b[0] < a[1]


# One specialist's day -----------------------------------------------------------------------


def _day_entries(
    bounds: Interval,
    appointments: Sequence[Appointment],
    windows: Sequence[WorkWindow],
    time_off: Sequence[TimeOff],
    user: StaffUser,
    locations: dict[int, str],
    buffer: timedelta = timedelta(0),
) -> list[Entry]:
    """The appointments, free time, breaks and time off of one specialist in ``bounds``;
    ``buffer`` is the clinic's buffer now."""
    offs = _merged(c for t in time_off if (c := _clip((t.starts_at, t.ends_at), bounds)))
    reasons = [t for t in time_off if t.reason]
    # The specialist's time an appointment takes, as the booking engine reads it
    # (``availability.open_slots``): the buffer after it, the one in force now if it grew since
    # the booking stored its own, and the buffer now before it (no slot may end closer to its
    # start). Neither is free time; both are left blank.
    blocks = [
        (a.starts_at - buffer, max(a.blocked_until, a.ends_at + buffer)) for a in appointments
    ]
    entries: list[Entry] = []
    for a in appointments:
        clipped = _clip((a.starts_at, a.ends_at), bounds)
        if clipped is None:
            continue
        entries.append(
            Entry(
                EntryKind.APPOINTMENT,
                *clipped,
                appointment=a,
                shown=can_see(user, a.request),
                location=a.location.display_name,
                during_time_off=any(_overlaps(clipped, off) for off in offs),
            )
        )
    covered: list[Interval] = []
    for w in windows:
        window = _clip((w.starts_at, w.ends_at), bounds)
        if window is None:
            continue
        for start, end in _minus([window], [*covered, *offs, *blocks]):
            entries.append(Entry(EntryKind.FREE, start, end, location=locations.get(w.location_id)))
        covered.append(window)
    worked = _merged(covered)
    gaps = [(a[1], b[0]) for a, b in pairwise(worked)]
    for start, end in _minus(gaps, [*offs, *blocks]):
        entries.append(Entry(EntryKind.BREAK, start, end))
    booked = [(a.starts_at, a.ends_at) for a in appointments]
    for start, end in _minus(offs, booked):
        reason = next(
            (t.reason for t in reasons if _overlaps((t.starts_at, t.ends_at), (start, end))), None
        )
        entries.append(Entry(EntryKind.TIME_OFF, start, end, reason=reason))
    return entries


# The grid -----------------------------------------------------------------------------------


def _repeat(day: date) -> Repeat | None:
    """The hour (or so) the clocks go through twice on ``day``, if they go back that day."""
    length = from_clinic_local(day + timedelta(days=1), time()) - from_clinic_local(day, time())
    if length <= timedelta(hours=24):
        return None
    seen = None
    for minute in range(0, DAY_MINUTES, STEP_MINUTES):
        at = time(minute // 60, minute % 60)
        instants = clinic_instants(day, at)
        if len(instants) == 2 and seen is None:
            first, second = (to_clinic_tz(i) for i in instants)
            seen = (minute, (first.tzname() or "", second.tzname() or ""))
        if len(instants) < 2 and seen is not None:
            return Repeat(seen[0], minute, seen[1])
    return None


def _wall_minutes(moment: datetime, day: date, repeat: Repeat | None = None) -> int:
    """Minutes from the clinic's midnight starting ``day`` to ``moment``, by the wall clock
    (the next midnight is 24:00); with ``repeat``, the time after its first round is moved on
    by its length, so the second round has its own rows."""
    local = to_clinic_tz(moment)
    later = 0 if repeat is None else repeat.minutes
    if local.date() > day:
        return DAY_MINUTES + later
    if local.date() < day:
        return 0
    minutes = local.hour * 60 + local.minute
    if repeat is not None and (
        minutes >= repeat.end or (minutes >= repeat.start and local.fold == 1)
    ):
        return minutes + later
    return minutes


def _time_text(moment: datetime, day: date, clock_change: bool) -> str:
    local = to_clinic_tz(moment)
    text = "24:00" if local.date() > day and local.time() == time() else local.strftime("%H:%M")
    # On a clock-change day an hour is read twice (or not at all): the zone says which.
    return f"{text} {local.tzname()}" if clock_change else text


def _default_hours() -> tuple[int, int]:
    """The clinic's working hours (``CLINIC_WORKING_HOURS``), in minutes: the grid of a day
    without any work or appointment."""
    try:
        first, last = working_hours_setting(current_app.config["CLINIC_WORKING_HOURS"])
    except ValueError:
        return 8 * 60, 18 * 60
    if last == END_OF_DAY:
        return first.hour * 60 + first.minute, DAY_MINUTES
    return first.hour * 60 + first.minute, last.hour * 60 + last.minute


def _hour_label(minute: int, repeat: Repeat | None) -> str:
    """A grid row's hour: "02:00"; the repeated hour's two rounds "02:00 CEST", "02:00 CET"."""
    if repeat is None or minute < repeat.start:
        return f"{minute // 60:02d}:00"
    if minute < repeat.end:
        return f"{minute // 60:02d}:00 {repeat.zones[0]}"
    wall = minute - repeat.minutes
    if wall < repeat.end:
        return f"{wall // 60:02d}:00 {repeat.zones[1]}"
    return f"{wall // 60:02d}:00"


def _lay_out(board: Board, extents: list[tuple[int, int]]) -> None:
    """Give the board its hours (whole hours around every appointment and working window)
    and each entry its grid lines; time off beyond the hours is cut to them."""
    first, last = (
        (min(s for s, _e in extents), max(e for _s, e in extents)) if extents else _default_hours()
    )
    repeat = board.repeat
    later = 0 if repeat is None else repeat.minutes
    start = first // 60 * 60
    end = min(DAY_MINUTES + later, max(start + 60, -(-last // 60) * 60))
    board.last_line = (end - start) // STEP_MINUTES + 1
    board.hours = [
        (line, line + LINES_PER_HOUR, _hour_label(minute, repeat))
        for minute in range(start, end, 60)
        for line in [(minute - start) // STEP_MINUTES + 1]
    ]
    for column in board.columns:
        placed = []
        change = column.day_hours != 24
        for entry in column.entries:
            begin = _wall_minutes(entry.starts_at, column.day, repeat)
            finish = _wall_minutes(entry.ends_at, column.day, repeat)
            shown_begin, shown_finish = max(begin, start), min(finish, end)
            if entry.kind is not EntryKind.APPOINTMENT and shown_finish - shown_begin < (
                STEP_MINUTES
            ):
                continue  # time off outside the hours shown, or a sliver of free time
            entry.first_line = (shown_begin - start) // STEP_MINUTES + 1
            entry.end_line = max(
                entry.first_line + 1, -(-(shown_finish - start) // STEP_MINUTES) + 1
            )
            entry.end_line = min(entry.end_line, board.last_line)
            entry.first_line = min(entry.first_line, entry.end_line - 1)
            entry.start_text = _time_text(entry.starts_at, column.day, change)
            entry.end_text = _time_text(entry.ends_at, column.day, change)
            placed.append(entry)
        column.entries = sorted(placed, key=lambda e: (e.starts_at, e.ends_at))


def build_agenda(
    user: StaffUser,
    days: Sequence[date],
    specialists: Sequence[StaffUser],
    *,
    everyone: bool,
    location_id: int | None,
    locations: Sequence[Location],
) -> Agenda:
    """The agenda of ``specialists`` on ``days``: one board of ``days`` per specialist, or,
    for one day, one board with the specialists side by side. With ``everyone`` every
    specialist's appointments are read, and a specialist who has some but is not in
    ``specialists`` (an account switched off since) gets a column too: no booked time is ever
    left off the page."""
    start = from_clinic_local(days[0], time())
    end = from_clinic_local(days[-1] + timedelta(days=1), time())
    ids = None if everyone else [s.id for s in specialists]
    buffer = timedelta(minutes=clinic_settings().buffer_minutes)
    # With those ending before the first day whose buffer runs into it, and those starting
    # after the last day whose buffer before them reaches back into it: that time is not free,
    # though they are not the shown days' appointments.
    appointments = agenda_appointments(
        start, end, specialist_ids=ids, location_id=location_id, buffer=buffer
    )
    windows, time_off = working_time(start, end, ids, location_id)

    people = {s.id: s for s in specialists}
    for a in appointments:
        if a.ends_at > start and a.starts_at < end:
            people.setdefault(a.specialist_id, a.specialist)
    ordered = sorted(people.values(), key=lambda s: (s.full_name, s.id))
    names = {loc.id: loc.display_name for loc in locations}
    # One clock change a year goes back: a board shows at most one repeated hour.
    repeat = next((r for day in days if (r := _repeat(day)) is not None), None)

    def column(day: date, specialist: StaffUser) -> tuple[Column, list[tuple[int, int]]]:
        bounds = (
            from_clinic_local(day, time()),
            from_clinic_local(day + timedelta(days=1), time()),
        )
        own = [a for a in appointments if a.specialist_id == specialist.id]
        work = [w for w in windows if w.specialist_id == specialist.id]
        entries = _day_entries(
            bounds,
            own,
            work,
            [t for t in time_off if t.specialist_id == specialist.id],
            user,
            names,
            buffer,
        )
        # What the hours must show: the appointments and working windows of the day.
        extents = [
            (_wall_minutes(s, day, repeat), _wall_minutes(e, day, repeat))
            for s, e in [
                *((a.starts_at, a.ends_at) for a in own),
                *((w.starts_at, w.ends_at) for w in work),
            ]
            if _overlaps((s, e), bounds)
        ]
        hours = round((bounds[1] - bounds[0]).total_seconds() / 3600)
        return Column(day, specialist, entries, hours), extents

    boards: list[Board] = []
    if len(days) == 1:
        pairs = [column(days[0], s) for s in ordered]
        boards.append(Board(None, [c for c, _e in pairs], repeat=repeat))
        extents_by_board = [[x for _c, e in pairs for x in e]]
    else:
        extents_by_board = []
        for specialist in ordered:
            pairs = [column(day, specialist) for day in days]
            boards.append(Board(specialist, [c for c, _e in pairs], repeat=repeat))
            extents_by_board.append([x for _c, e in pairs for x in e])
    for board, extents in zip(boards, extents_by_board, strict=True):
        _lay_out(board, extents)
    shown = {
        e.appointment.id
        for b in boards
        for c in b.columns
        for e in c.entries
        if e.appointment is not None
    }
    held = sum(1 for a in appointments if a.id in shown and a.request.is_unconfirmed)
    return Agenda(boards, len(shown), held)


def grid_css() -> str:
    """The agenda's grid-line classes (``booking/static/css/agenda.css`` holds this text; a
    test keeps them the same)."""
    lines = [
        "/* Generated by booking.calendar.agenda.grid_css(): the agenda's grid lines, one class",
        f"   per {STEP_MINUTES}-minute step of the day (no inline styles under the CSP). */",
    ]
    for n in range(1, LAST_LINE + 1):
        lines.append(f".ag-from-{n}{{grid-row-start:{n}}}.ag-to-{n}{{grid-row-end:{n}}}")
    lines.append("/* The whole lines of text an entry holds (Entry.text_lines). */")
    for n in range(1, MAX_CLAMP_LINES + 1):
        lines.append(f".ag-lines-{n}{{-webkit-line-clamp:{n};line-clamp:{n}}}")
    return "\n".join(lines) + "\n"
