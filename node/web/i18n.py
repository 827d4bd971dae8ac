"""Languages: Babel catalogs, the choice of a language, and locale-aware formatting.

Catalogs are the .po files under locale/, compiled in memory at startup: no build step,
and a translator's edit shows after a restart. English is the source language.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from babel import Locale
from babel.dates import DateTimePattern, match_skeleton, parse_pattern
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import NullTranslations, Translations

from protocol import units

LOCALE_DIR = Path(__file__).parent / "locale"
LANGUAGES = ("en", "es", "ar")  # shipped complete; tests/test_web_catalogs.py checks each
DEFAULT = "en"


def load_catalogs() -> dict[str, NullTranslations]:
    out: dict[str, NullTranslations] = {DEFAULT: NullTranslations()}
    for lang in LANGUAGES:
        po = LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po"
        if lang == DEFAULT or not po.exists():
            continue
        with po.open("rb") as fp:
            catalog = read_po(fp, locale=lang)
        mo = io.BytesIO()
        write_mo(mo, catalog, use_fuzzy=False)
        mo.seek(0)
        out[lang] = Translations(mo)
    return out


def negotiate(chosen: str | None, accept_language: str) -> str:
    """The person's choice, else the browser's first shipped language, else English."""
    if chosen in LANGUAGES:
        return chosen
    ranked = []
    for i, part in enumerate(accept_language.split(",")[:20]):
        tag, _, q = part.strip().partition(";q=")
        try:
            weight = float(q) if q else 1.0
        except ValueError:
            continue
        ranked.append((-weight, i, tag.strip().lower().split("-")[0]))
    for _w, _i, lang in sorted(ranked):
        if lang in LANGUAGES:
            return lang
    return DEFAULT


def plural(word: str, lang: str, synonyms: tuple[str, ...]) -> str:
    """The plural of a unit's label: Spanish by its rule, English from the unit's own
    synonyms (loaf -> loaves) or with an s; other languages keep the label."""
    if lang == "es":
        if word[-1] in "aeiouáéó":
            return word + "s"
        if word.endswith("ón"):
            return word[:-2] + "ones"
        return word[:-1] + "ces" if word.endswith("z") else word + "es"
    if lang != "en":
        return word  # no rule we can trust: the label as the vocabulary gives it
    stem = word[: max(2, len(word) - 2)]
    found = next((s for s in synonyms if s != word and s.startswith(stem) and
                  s.endswith("s") and " " not in s), None)
    return found or (word if word.endswith("s") else word + "s")


class Texts:
    """One language's strings and formats, handed to templates and handlers (one per
    request: the locale and its patterns are looked up once, not per value shown)."""

    def __init__(self, lang: str, translations: NullTranslations) -> None:
        self.lang = lang
        self.translations = translations
        self.locale = Locale.parse(lang)
        self.direction = "rtl" if self.locale.character_order == "right-to-left" else "ltr"
        self._dates: dict[bool, DateTimePattern] = {}
        self._time = self.locale.time_formats["short"]
        self._labels: dict[str, str] | None = None

    def gettext(self, message: str) -> str:
        return self.translations.gettext(message)

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.translations.ngettext(singular, plural, n)

    def when(self, value: str | int | None) -> str:
        """An RFC 3339 time or ms since the epoch, in the node's zone, locale style."""
        if not value:
            return ""
        moment = datetime.fromtimestamp(value / 1000, UTC) if isinstance(value, int) \
            else datetime.fromisoformat(value)
        moment = moment.astimezone()
        this_year = moment.year == datetime.now().year
        if this_year not in self._dates:
            skeleton = "MMMEd" if this_year else "yMMMEd"
            self._dates[this_year] = parse_pattern(
                self.locale.datetime_skeletons[match_skeleton(
                    skeleton, self.locale.datetime_skeletons) or skeleton])
        return f"{self._dates[this_year].apply(moment, self.locale)}, " \
               f"{self._time.apply(moment, self.locale)}"

    def number(self, value: object) -> str:
        try:
            return format_decimal(Decimal(str(value)), locale=self.locale)
        except (InvalidOperation, ValueError):
            return str(value)

    def qty(self, quantity: dict[str, object] | None) -> str:
        """{value, unit} as people say it: '20 loaves', '1 caja', '2,5 kilogramos'."""
        if not quantity:
            return ""
        value = quantity["value"]
        return f"{self.number(value)} {self.unit_name(str(quantity['unit']), value)}"

    def unit_name(self, code: str, count: object = 2) -> str:
        unit = units.BY_CODE.get(code)
        if unit is None:
            return code
        name = getattr(unit, self.lang, None) or unit.en
        return name if Decimal(str(count)) == 1 else plural(name, self.lang, unit.synonyms)

    def label(self, value: str | None) -> str:
        """A status or an urgency, as people say it."""
        if self._labels is None:
            _ = self.gettext
            self._labels = {
                "open": _("open"), "partly-committed": _("partly promised"),
                "committed": _("promised"), "fulfilled": _("handed over"),
                "withdrawn": _("withdrawn"), "expired": _("expired"),
                "pending": _("waiting for an answer"), "accepted": _("accepted"),
                "declined": _("declined"), "low": _("Low"), "normal": _("Normal"),
                "high": _("High"), "critical": _("Critical: today")}
        return self._labels.get(value or "", value or "")
