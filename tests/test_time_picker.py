"""The patient's time picker: one day at a time, a compact grid of times grouped by who and
where and by morning and afternoon, filters for specialist and place (issue #16)."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient

from booking.timeutil import clinic_today
from tests.factories import make_appointment_type, make_hours, make_location, make_staff
from tests.support import clock_change_ahead


def _clinic(app: Flask) -> tuple[int, int, int]:
    """Two places: Dr. North mornings at the north site, Dr. South afternoons in the south."""
    with app.app_context():
        appointment_type = make_appointment_type(minutes=30)
        north, south = make_location("North site"), make_location("South site")
        make_hours(
            make_staff("specialist", full_name="Dr. North"), north, range(7), "08:00", "12:00"
        )
        make_hours(
            make_staff("specialist", full_name="Dr. South"), south, range(7), "13:00", "17:00"
        )
        return appointment_type.id, north.id, south.id


def _times(page: str) -> list[str]:
    return re.findall(
        r'<strong>(\d\d:\d\d)</strong><span class="visually-hidden"> · ([^<]+)</span>', page
    )


def test_a_day_shows_its_times_by_place_and_part_of_day(app: Flask, client: FlaskClient) -> None:
    type_id, _north, _south = _clinic(app)
    # A day both work whatever the hour: from late morning, the first bookable day (24 hours'
    # notice) has only Dr. South's afternoon left.
    with app.app_context():
        day = clinic_today() + timedelta(days=2)
    page = client.get(f"/request/time?type={type_id}&day={day.isoformat()}")
    page = page.get_data(as_text=True)
    times = _times(page)
    assert times, "no times shown"
    places = {place for _time, place in times}
    assert places == {"Dr. North · North site", "Dr. South · South site"}
    assert "Morning" in page and "Afternoon" in page
    # Each time's full name says who and where; the visible label is the time alone.
    assert all(re.fullmatch(r"\d\d:\d\d", time) for time, _place in times)
    # One day at a time, and Continue follows that day's times.
    assert page.count('class="mb-3 border rounded p-3 slot-day"') == 1
    assert page.index("Continue with this time") > page.rindex('name="slot"')


def test_the_place_filter_shows_only_that_places_times(app: Flask, client: FlaskClient) -> None:
    type_id, north, south = _clinic(app)
    page = client.get(f"/request/time?type={type_id}&location={south}").get_data(as_text=True)
    assert {place for _time, place in _times(page)} == {"Dr. South · South site"}
    assert f'<option dir="auto" value="{south}" selected>' in page
    # Paging keeps the filter.
    assert re.search(rf'href="/request/time\?[^"]*location={south}[^"]*"[^>]*>Later dates', page)
    page = client.get(f"/request/time?type={type_id}&location={north}").get_data(as_text=True)
    assert {place for _time, place in _times(page)} == {"Dr. North · North site"}


def test_a_chosen_time_continues_to_the_time_step(app: Flask, client: FlaskClient) -> None:
    type_id, _north, _south = _clinic(app)
    page = client.get(f"/request/time?type={type_id}").get_data(as_text=True)
    assert 'action="/request/steps/time"' in page
    assert 'href="/request/steps/time?slot="' in page  # without a time


def test_continue_with_no_time_ticked_comes_back_to_the_same_times_with_a_message(
    app: Flask, client: FlaskClient
) -> None:
    """The browser sends the times form without a slot when none is ticked: the patient is
    not carried on silently without a time, but shown the same times again with a message."""
    from tests.support import answer_red_flags

    type_id, _north, south = _clinic(app)
    answer_red_flags(client)
    page = client.get(f"/request/time?type={type_id}&location={south}").get_data(as_text=True)
    form = page[page.index('action="/request/steps/time"') :].split("</form>", 1)[0]
    sent = dict(re.findall(r'name="([a-z]+)" value="([^"]*)"', form))
    assert sent["picked"] == "1" and sent["location"] == str(south) and "day" in sent
    response = client.get("/request/steps/time", query_string=sent)
    assert response.status_code == 303
    assert response.location.startswith("/request/time?")
    again = client.get(response.location).get_data(as_text=True)
    assert "Please choose one of the times, or continue without choosing a time." in again
    assert {place for _time, place in _times(again)} == {"Dr. South · South site"}
    # Continuing without a time is still possible, and a ticked time goes on as before.
    assert client.get("/request/steps/time?slot=").status_code == 200


def test_pages_of_two_weeks_neither_repeat_nor_skip_a_day_across_a_clock_change(
    app: Flask, client: FlaskClient
) -> None:
    """Two weeks were 14 x 24 hours from the first midnight: across the October night (25
    hours) the next page began on the last day shown, and across March's (23 hours) the
    earlier page left a day out."""
    type_id, _north, _south = _clinic(app)
    with app.app_context():
        # The page starts a week before the change: that day must be ahead, or the picker
        # starts at today instead (in the week before October's change the test failed).
        change = clock_change_ahead(10, clinic_today() + timedelta(days=7))
    first = change - timedelta(days=7)
    page = client.get(f"/request/time?type={type_id}&from={first.isoformat()}")
    page = page.get_data(as_text=True)
    later = re.search(r'from=(\d{4}-\d\d-\d\d)[^"]*">Later dates', page)
    assert later and later.group(1) == (first + timedelta(days=14)).isoformat()
    last = first + timedelta(days=13)
    assert f"to {last.day} {last:%B} {last.year}" in page
    # From the page after it, "Earlier dates" goes back to the first day of this one.
    following = client.get(f"/request/time?type={type_id}&from={later.group(1)}")
    earlier = re.search(r'from=(\d{4}-\d\d-\d\d)[^"]*">Earlier dates', following.get_data(True))
    assert earlier and earlier.group(1) == first.isoformat()


def test_the_picker_names_the_clinics_time_zone_in_the_readers_language(
    app: Flask, client: FlaskClient
) -> None:
    type_id, _north, _south = _clinic(app)
    english = client.get(f"/request/time?type={type_id}").get_data(as_text=True)
    assert "All times are in the clinic's time zone, Germany (Berlin) Time." in english
    spanish = client.get(f"/request/time?type={type_id}&lang=es").get_data(as_text=True)
    assert (
        "Todas las horas son de la zona horaria de la clínica, hora de Alemania (Berlín)."
        in spanish
    )
    assert "Europe/Berlin" not in spanish


def _announced(page: str) -> tuple[str, str, list[str]]:
    """What a page says of where the patient is: its title, its main heading and the steps
    its progress indicator marks as the current one."""
    from tests.support import headings, text

    title = text(re.search(r"<title>(.*?)</title>", page, re.S).group(1))
    (main,) = [heading for level, heading in headings(page) if level == 1]
    current = [text(each) for each in re.findall(r'aria-current="step">(.*?)</', page, re.S)]
    return title, main, current


def test_the_picker_and_the_time_steps_page_say_which_part_of_step_one_they_are(
    app: Flask, client: FlaskClient
) -> None:
    """Both pages were "Step 1 of 7" with nothing else to tell them apart (the picker had
    no progress indicator): each is step 1, announced as the current step, and says what it
    is for."""
    from tests.support import answer_red_flags

    type_id, _north, _south = _clinic(app)
    answer_red_flags(client)
    page = client.get(f"/request/time?type={type_id}").get_data(as_text=True)
    picker = _announced(page)
    assert picker[1:] == ("Step 1 of 7: Time Choose a time", ["1. Time"])
    assert picker[0].startswith("Step 1 of 7: Time · Choose a time · Request a spine evaluation")
    form = page[page.index('action="/request/steps/time"') :].split("</form>", 1)[0]
    sent = dict(re.findall(r'name="([a-z]+)" value="([^"]*)"', form))
    sent["slot"] = re.search(r'name="slot"[^>]*value="([^"]+)"', form).group(1)
    chosen = _announced(client.get("/request/steps/time", query_string=sent).get_data(True))
    assert chosen[1:] == ("Step 1 of 7: Time Your time, and when else you could come", ["1. Time"])
    assert chosen[0].startswith("Step 1 of 7: Time · Your time, and when else you could come · ")
    # Without a time: the page asks only when the patient could come.
    without = _announced(client.get("/request/steps/time?slot=").get_data(as_text=True))
    assert without[1:] == ("Step 1 of 7: Time When you could come", ["1. Time"])
    assert len({picker[0], chosen[0], without[0]}) == 3
