"""What every CSV file the clinic downloads shares, so a spreadsheet opens it right: the
byte-order mark, and the cell separator the clinic set (``EXPORT_CSV_DELIMITER``). The queue's
export (``booking.dashboard.export``) and the registry export (``booking.outcomes.results``)
both use it; it knows no feature."""

from __future__ import annotations

# Without it Excel reads a UTF-8 file as the system's legacy code page ("Lucía" garbled).
BOM = "\ufeff"

DELIMITERS = {",": ",", ";": ";", "tab": "\t"}


def delimiter(setting: str) -> str:
    """The cell separator ``EXPORT_CSV_DELIMITER`` names: a spreadsheet opens a CSV file
    with its language's list separator, which is ";" where the decimal mark is a comma
    (German, Spanish, French): with "," there, every row lands in one cell."""
    try:
        return DELIMITERS[setting.strip().lower()]
    except KeyError:
        raise RuntimeError(
            f"EXPORT_CSV_DELIMITER must be ',', ';' or 'tab', not {setting!r}"
        ) from None
