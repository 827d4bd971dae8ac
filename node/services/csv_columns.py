"""The columns of an imported sheet: which field each holds, from its header name in
English or Spanish, or as the person chose it (the import page's selects, --map).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .errors import Invalid

IGNORE = ""
# What a column can hold, with the header names (English, Spanish) that mean it.
FIELDS: dict[str, tuple[str, ...]] = {
    "key": ("key", "id", "clave", "ref", "reference", "referencia", "row id", "codigo",
            "code"),
    "kind": ("kind", "type", "tipo", "clase", "offer or need", "oferta o necesidad"),
    "title": ("title", "titulo", "what", "que", "item", "articulo", "nombre del articulo"),
    "category": ("category", "categoria", "categories", "categorias"),
    "quantity": ("quantity", "cantidad", "qty", "amount", "how many", "cuantos",
                 "cuantas", "quantity value", "cantidad valor"),
    "unit": ("unit", "unidad", "units", "unidades", "quantity unit", "unidad de medida"),
    "from": ("from", "desde", "available from", "disponible desde", "start", "inicio"),
    "until": ("until", "hasta", "available until", "disponible hasta", "expires", "vence",
              "end", "fin", "deadline", "fecha limite"),
    "area": ("area", "zona", "zone", "barrio", "neighbourhood", "neighborhood", "where",
             "donde"),
    "urgency": ("urgency", "urgencia", "priority", "prioridad"),
    "tags": ("tags", "tag", "etiquetas", "etiqueta"),
    "description": ("description", "descripcion", "details", "detalles", "notes", "notas"),
    "action": ("action", "accion", "how", "como"),
    "language": ("language", "idioma", "lang", "lengua"),
}
# Columns our own export writes that say how things stand, not what to post.
KNOWN_IGNORED = ("status", "estado", "available quantity", "committed quantity", "origin",
                 "origen", "group", "grupo", "created", "creado", "updated", "actualizado",
                 "available unit", "committed unit")


def plain(text: str) -> str:
    """A header or a word as compared: accents, case, '_' and '-' and spaces folded."""
    folded = "".join(c for c in unicodedata.normalize("NFKD", text)
                     if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[_\-.:()]+", " ", folded).split())


_BY_HEADER = {plain(name): f for f, names in FIELDS.items() for name in names}
_BY_HEADER.update({plain(n): IGNORE for n in KNOWN_IGNORED})
_BY_HEADER.update({"available from": "from", "available until": "until"})


@dataclass(frozen=True)
class CellError:
    """One problem of one row, in words: ``field`` is the sheet field at fault."""

    field: str
    code: str
    detail: str


@dataclass
class Mapping:
    """Which field each column holds (IGNORE: none); ``unknown``: columns not recognised."""

    fields: list[str]
    unknown: list[int] = field(default_factory=list)
    problems: list[CellError] = field(default_factory=list)

    def column(self, name: str) -> int | None:
        return self.fields.index(name) if name in self.fields else None


def guess(headers: list[str], chosen: dict[int, str] | None = None) -> Mapping:
    """Each column's field from its header name, or as the person ``chosen`` it."""
    chosen = chosen or {}
    out = Mapping([])
    for index, header in enumerate(headers):
        if index in chosen:
            wanted = chosen[index]
            out.fields.append(wanted if wanted in FIELDS else IGNORE)
            continue
        found = _BY_HEADER.get(plain(header))
        if found is None:
            out.unknown.append(index)
        out.fields.append(found or IGNORE)
    for name in FIELDS:
        columns = [headers[i] for i, f in enumerate(out.fields) if f == name]
        if len(columns) > 1:
            out.problems.append(CellError(name, "column-twice", f"{len(columns)} columns "
                                f"are read as {name} ({', '.join(columns)}); set all but "
                                "one to 'ignore'"))
    if "title" not in out.fields:
        out.problems.append(CellError("title", "no-title-column", "no column is read as "
                                      "the title; name one 'title' (or 'título'), or "
                                      "choose which column holds it"))
    return out


def by_name(headers: list[str], pairs: list[str]) -> dict[int, str]:
    """'Column=field' choices (the command line's --map) to column indexes."""
    out: dict[int, str] = {}
    for pair in pairs:
        name, sep, wanted = pair.rpartition("=")
        wanted = wanted.strip().lower()
        if wanted == "ignore":
            wanted = IGNORE
        if not sep or (wanted and wanted not in FIELDS):
            raise Invalid("invalid-mapping", f"--map takes COLUMN=FIELD with FIELD one of "
                          f"{', '.join(FIELDS)} or ignore, not {pair!r}", field="map")
        matches = [i for i, h in enumerate(headers) if plain(h) == plain(name)]
        if not matches:
            raise Invalid("invalid-mapping", f"no column named {name!r}; the columns are: "
                          f"{', '.join(headers)}", field="map")
        out[matches[0]] = wanted
    return out
