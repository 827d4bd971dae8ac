"""Spreadsheets for the import tests: a big sheet with a few known bad rows."""

from __future__ import annotations

import csv
import io

# Spreadsheet row number (the header is row 1) -> (cell to break, bad value, words the
# page shows for it).
BAD_ROWS = {
    14: ("until", "32/13/2030", "We cannot read this date"),
    77: ("category", "fod/bred", "did you mean 'food/bread'"),
    150: ("quantity", "lots", "Write a number above zero"),
}
HEADER = ["Título", "Categoría", "Cantidad", "Hasta", "Tipo", "Etiquetas"]
COLUMN = {"title": 0, "category": 1, "quantity": 2, "until": 3}


def big_sheet(rows: int = 200, bad: dict = BAD_ROWS, delimiter: str = ";") -> bytes:
    """``rows`` offers and needs in Spanish headers, semicolons and decimal commas, as a
    Spanish Excel saves them; the rows in ``bad`` carry one mistake each."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(HEADER)
    for i in range(rows):
        number = i + 2
        kind = "necesidad" if i % 4 == 0 else "oferta"
        cells = [f"Artículo {i:03d}", "Pan y bollería" if i % 2 else "food/pantry",
                 f"{i % 9 + 1},5 kg", f"{i % 28 + 1}/12/2030 18:00", kind, "lote, prueba"]
        if number in bad:
            column, value, _words = bad[number]
            cells[COLUMN[column]] = value
        writer.writerow(cells)
    return out.getvalue().encode("utf-8-sig")
