"""Starter category taxonomy. Groups may extend it with any well-formed path."""

from __future__ import annotations

import re

CATEGORY_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}(/[a-z0-9][a-z0-9-]{0,31}){0,3}\Z")
MAX_CATEGORY_LEN = 100

STARTER_TAXONOMY: dict[str, str] = {
    "food": "Food and drink",
    "food/produce": "Fresh fruit and vegetables",
    "food/bread": "Bread and baked goods",
    "food/meals": "Cooked meals",
    "food/pantry": "Dry and canned goods",
    "food/baby": "Baby food and formula",
    "goods": "Things to give or lend",
    "goods/clothing": "Clothing and shoes",
    "goods/furniture": "Furniture",
    "goods/hygiene": "Hygiene and sanitary products",
    "goods/medical": "Non-prescription medical supplies",
    "tools": "Tools and equipment",
    "tools/hand": "Hand tools",
    "tools/power": "Power tools",
    "tools/garden": "Garden tools",
    "transport": "Getting people and things around",
    "transport/ride": "Rides for people",
    "transport/delivery": "Moving goods",
    "housing": "A place to stay",
    "housing/shelter": "Emergency shelter, a night or a few",
    "housing/storage": "Storage space",
    "skills": "Time and know-how",
    "skills/repair": "Repairs",
    "skills/plumbing": "Plumbing",
    "skills/electrical": "Electrical work",
    "skills/language": "Translation and interpreting",
    "skills/tutoring": "Tutoring and lessons",
    "care": "Care for people",
    "care/childcare": "Childcare",
    "care/eldercare": "Elder care and check-ins",
    "care/pets": "Pet care",
    "money": "Funds and vouchers",
}


def is_category(path: str) -> bool:
    return isinstance(path, str) and len(path) <= MAX_CATEGORY_LEN and bool(
        CATEGORY_RE.match(path)
    )


def category_matches(wanted: str, offered: str) -> bool:
    """A need for ``food`` is met by ``food/produce``: prefix match on whole segments."""
    return offered == wanted or offered.startswith(wanted + "/")
