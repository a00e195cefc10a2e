"""What every CSV file the clinic downloads shares, so a spreadsheet opens it right: the
byte-order mark, and the cell separator the clinic set (``EXPORT_CSV_DELIMITER``). The queue's
export (``booking.dashboard.export``) and the registry export (``booking.outcomes.results``)
both use it; it knows no feature."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")

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


def number(value: float | None, separator: str = ",") -> str:
    """A number for a cell, as written (six significant digits at most: "44.4444"), with a
    decimal comma where the cells are separated by ";": that is the separator of the
    spreadsheets whose decimal mark is a comma (German, Spanish, French), which read
    "44.4444" as 444444 and "12.5" as the 12th of May. Nothing for None."""
    if value is None:
        return ""
    if isinstance(value, int):
        return str(value)
    text = f"{value:g}"
    return text.replace(".", ",") if separator == ";" else text


def csv_pieces(
    rows: Iterable[T],
    cells: Callable[[T], Sequence[object]],
    *,
    separator: str = ",",
    rows_per_piece: int,
    handed_on: Callable[[list[T]], None] | None = None,
) -> Iterator[str]:
    """The rows' CSV lines (``cells`` makes a row's cells) in pieces of ``rows_per_piece``,
    each yielded as soon as its rows are read, so a long file is never held whole (encode
    each as UTF-8). ``handed_on``, when given, gets a piece's rows as the piece is handed on:
    what was generated, for an audit, even when the download stops at that piece."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=separator)
    written: list[T] = []
    for n, row in enumerate(rows, start=1):
        writer.writerow(cells(row))
        written.append(row)
        if n % rows_per_piece == 0:
            yield _hand_on(out, written, handed_on)
    if out.tell():
        yield _hand_on(out, written, handed_on)


def _hand_on(
    out: io.StringIO, written: list[T], handed_on: Callable[[list[T]], None] | None
) -> str:
    piece = out.getvalue()
    out.seek(0)
    out.truncate()
    if handed_on is not None:
        handed_on(list(written))
    written.clear()
    return piece
