"""Where and when requests are seen: locations, appointment types, specialists' hours, open
times, appointments and their calendar files."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register how a visit takes place, for the pages and emails that show a time, and the
    languages names are given in, for the admin's lists; and the days an admin closed the
    clinic, read with the settings' closed days."""
    from booking.openinghours import add_closed_days_source
    from booking.scheduling.closures import closure_reasons
    from booking.scheduling.services import other_languages
    from booking.scheduling.visits import (
        MODE_LABELS,
        checklist,
        from_home,
        mode_change,
        mode_change_html,
        preparation,
        visit_is_remote,
        visit_join_link,
        visit_when,
        visit_where,
        visit_where_html,
    )

    add_closed_days_source(app, closure_reasons)
    app.add_template_global(other_languages)  # the admin's names in each language
    app.add_template_global(visit_where)
    app.add_template_global(visit_where_html)  # the emails' HTML part and the pages
    app.add_template_global(mode_change, "visit_mode_change")
    app.add_template_global(mode_change_html, "visit_mode_change_html")
    app.add_template_global(visit_is_remote)
    app.add_template_global(visit_join_link)
    app.add_template_global(visit_when)
    app.add_template_global(from_home, "visit_from_home")
    app.add_template_global(preparation, "visit_preparation")
    app.add_template_global(checklist, "visit_checklist")
    app.add_template_global(MODE_LABELS, "visit_mode_labels")
