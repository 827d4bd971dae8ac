"""How names people type are checked and compared: person names, area names, language tags.

Names are shown to others (the audit trail, lists), so nothing in them may break a line or
make one name display as another; comparison folds case and compatibility forms beyond
SQLite's ASCII-only NOCASE, so 'ÉVA' and 'éva' are one name.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .errors import Invalid

_LANGUAGE_RE = re.compile(r"[a-z]{2,3}(-[a-z]{4})?(-([a-z]{2}|[0-9]{3}))?")
# Bidirectional overrides and isolates would let a name display as another one.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def name_key(name: str) -> str:
    """The form names are compared in: NFKC, case folded, trimmed."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def sort_key(name: str) -> tuple[str, str]:
    """Alphabetical for people: accents and case aside ('Ávila' before 'Burgos')."""
    bare = "".join(ch for ch in unicodedata.normalize("NFKD", name)
                   if not unicodedata.combining(ch))
    return bare.casefold(), name


def clean_name(name: Any, field: str, longest: int) -> str:
    """A display name: trimmed, NFC, 1..longest characters, no control characters."""
    if not isinstance(name, str):
        raise Invalid("invalid-field", f"{field} must be text", field=field)
    name = unicodedata.normalize("NFC", name.strip())
    if not 1 <= len(name) <= longest:
        raise Invalid("invalid-field", f"{field} must be 1 to {longest} characters",
                      field=field)
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") or ch in _BIDI
           for ch in name):
        raise Invalid("invalid-field", f"{field} must not contain control characters or "
                      "line breaks; use letters, digits, spaces and punctuation", field=field)
    return name


def language_tag(language: Any) -> str | None:
    """None or a short BCP 47 tag, in its usual case ('es', 'pt-BR', 'sr-Latn')."""
    if language is None:
        return None
    if not isinstance(language, str) or not _LANGUAGE_RE.fullmatch(language.lower()):
        raise Invalid("invalid-field", "language is a short language tag such as 'es' or "
                      "'pt-BR', or empty for the browser's choice", field="language")
    parts = language.lower().split("-")
    return "-".join([parts[0]] + [p.title() if len(p) == 4 else p.upper() for p in parts[1:]])
