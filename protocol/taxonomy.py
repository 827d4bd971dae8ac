"""The starter category taxonomy (spec §11), labelled in English and Spanish.

The protocol accepts any well-formed path; a node refuses to *write* one that is neither
here nor among its group's declared categories (a typo such as `fod/bread` would match
nothing, ever), and names the closest known paths instead.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}(/[a-z0-9][a-z0-9-]{0,31}){0,3}\Z")
MAX_CATEGORY_LEN = 100

# path -> (English, Spanish); spec §11 lists the same table.
LABELS: dict[str, tuple[str, str]] = {
    "food": ("Food and drink", "Comida y bebida"),
    "food/produce": ("Fresh fruit and vegetables", "Frutas y verduras frescas"),
    "food/bread": ("Bread and baked goods", "Pan y bollería"),
    "food/meals": ("Cooked meals", "Comidas preparadas"),
    "food/pantry": ("Dry and canned goods", "Alimentos secos y en conserva"),
    "food/baby": ("Baby food and formula", "Alimentos y leche para bebés"),
    "goods": ("Things to give or lend", "Cosas para dar o prestar"),
    "goods/clothing": ("Clothing and shoes", "Ropa y calzado"),
    "goods/furniture": ("Furniture", "Muebles"),
    "goods/hygiene": ("Hygiene and sanitary products", "Productos de higiene"),
    "goods/medical": ("Non-prescription medical supplies", "Material sanitario sin receta"),
    "tools": ("Tools and equipment", "Herramientas y equipos"),
    "tools/hand": ("Hand tools", "Herramientas manuales"),
    "tools/power": ("Power tools", "Herramientas eléctricas"),
    "tools/garden": ("Garden tools", "Herramientas de jardín"),
    "transport": ("Getting people and things around", "Llevar personas y cosas"),
    "transport/ride": ("Rides for people", "Viajes para personas"),
    "transport/delivery": ("Moving goods", "Transporte de mercancías"),
    "housing": ("A place to stay", "Un lugar donde quedarse"),
    "housing/shelter": ("Emergency shelter, a night or a few",
                        "Alojamiento de emergencia, una noche o unas pocas"),
    "housing/storage": ("Storage space", "Espacio de almacenamiento"),
    "skills": ("Time and know-how", "Tiempo y conocimientos"),
    "skills/repair": ("Repairs", "Reparaciones"),
    "skills/plumbing": ("Plumbing", "Fontanería"),
    "skills/electrical": ("Electrical work", "Electricidad"),
    "skills/language": ("Translation and interpreting", "Traducción e interpretación"),
    "skills/tutoring": ("Tutoring and lessons", "Clases y apoyo escolar"),
    "care": ("Care for people", "Cuidado de personas"),
    "care/childcare": ("Childcare", "Cuidado infantil"),
    "care/eldercare": ("Elder care and check-ins", "Cuidado y visitas a mayores"),
    "care/pets": ("Pet care", "Cuidado de mascotas"),
    "money": ("Funds and vouchers", "Fondos y vales"),
}
LANGUAGES = ("en", "es")
STARTER_TAXONOMY: dict[str, str] = {path: en for path, (en, _) in LABELS.items()}


def is_category(path: str) -> bool:
    return isinstance(path, str) and len(path) <= MAX_CATEGORY_LEN and bool(
        CATEGORY_RE.match(path)
    )


def category_matches(wanted: str, offered: str) -> bool:
    """A need for ``food`` is met by ``food/produce``: prefix match on whole segments."""
    return offered == wanted or offered.startswith(wanted + "/")


def closest_categories(path: str, known: Iterable[str], n: int = 3) -> list[str]:
    """The known paths nearest to ``path`` (difflib ratio >= 0.6), best first."""
    return difflib.get_close_matches(path, list(known), n=n, cutoff=0.6)
