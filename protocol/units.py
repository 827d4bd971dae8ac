"""The unit vocabulary (spec §9.7): canonical codes, their synonyms, exact conversion.

Pure data. Every node must resolve a unit string to the same unit and convert a quantity
to the same decimal, or two nodes would fold the same claims into different statuses;
so the lookup is deliberately simple (ASCII case, outer spaces) and conversion is exact
rational arithmetic truncated to the three decimals a quantity may carry (§9.2).

A unit converts only to units with the same ``base`` (kg, g and lb share ``g``); count
units are mostly their own base (a box is not a number of loaves), except pair and dozen
(multiples of each). A string the vocabulary does not know is still a valid unit: it
matches and converts only to itself.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

# A unit a group declares for itself (profile `units`, §9.3): a code, not free text.
UNIT_CODE_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}\Z")
STEP = Decimal("0.001")  # quantities carry at most three decimals (§9.2)
LANGUAGES = ("en", "es", "ar")  # the labels each unit carries (Unit.en, .es, .ar)
_ASCII_UPPER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


@dataclass(frozen=True)
class Unit:
    code: str
    dimension: str  # count, mass, volume, time, length, area, money (descriptive)
    base: str  # units convert only to units with the same base
    factor: Decimal  # how many base units one of this unit is
    en: str
    es: str
    ar: str
    synonyms: tuple[str, ...]

    @property
    def labels(self) -> dict[str, str]:
        """The unit's name in each of LANGUAGES, as people see it in a picker."""
        return {lang: getattr(self, lang) for lang in LANGUAGES}


def _u(code: str, dimension: str, base: str, factor: str, en: str, es: str, ar: str,
       synonyms: str = "") -> Unit:
    return Unit(code, dimension, base, Decimal(factor), en, es, ar, tuple(synonyms.split()))


UNITS: tuple[Unit, ...] = (
    # count: each is its own kind of thing; pair and dozen are multiples of each
    _u("each", "count", "each", "1", "item", "unidad", "قطعة",
       "ea item items piece pieces pc pcs unit units unidad unidades pieza piezas"),
    _u("pair", "count", "each", "2", "pair", "par", "زوج", "pairs par pares"),
    _u("dozen", "count", "each", "12", "dozen", "docena", "دزينة", "dozens doz dz docena docenas"),
    _u("loaf", "count", "loaf", "1", "loaf", "barra", "رغيف",
       "loaves loafs barra barras hogaza hogazas"),
    _u("box", "count", "box", "1", "box", "caja", "صندوق", "boxes caja cajas"),
    _u("bag", "count", "bag", "1", "bag", "bolsa", "كيس",
       "bags sack sacks bolsa bolsas saco sacos"),
    _u("meal", "count", "meal", "1", "meal", "comida", "وجبة", "meals comida comidas"),
    _u("portion", "count", "portion", "1", "portion", "ración", "حصة",
       "portions serving servings porcion porciones racion raciones"),
    _u("bottle", "count", "bottle", "1", "bottle", "botella", "زجاجة", "bottles botella botellas"),
    _u("can", "count", "can", "1", "can", "lata", "علبة", "cans tin tins lata latas"),
    _u("jar", "count", "jar", "1", "jar", "frasco", "مرطبان", "jars frasco frascos tarro tarros"),
    _u("pack", "count", "pack", "1", "pack", "paquete", "عبوة",
       "packs package packages packet packets pkg paquete paquetes"),
    _u("crate", "count", "crate", "1", "crate", "cajón", "قفص", "crates cajon cajones"),
    _u("person", "count", "person", "1", "person", "persona", "شخص",
       "people persons persona personas"),
    _u("bed", "count", "bed", "1", "bed", "cama", "سرير", "beds cama camas"),
    _u("night", "count", "night", "1", "night", "noche", "ليلة", "nights noche noches"),
    _u("seat", "count", "seat", "1", "seat", "plaza", "مقعد",
       "seats asiento asientos plaza plazas"),
    _u("ride", "count", "ride", "1", "ride", "viaje", "توصيلة", "rides trip trips viaje viajes"),
    _u("bunch", "count", "bunch", "1", "bunch", "manojo", "حزمة",
       "bunches manojo manojos ramo ramos"),
    _u("bar", "count", "bar", "1", "bar", "pastilla", "قالب", "bars pastilla pastillas"),
    _u("set", "count", "set", "1", "set", "juego", "طقم", "sets kit kits juego juegos"),
    _u("voucher", "count", "voucher", "1", "voucher", "vale", "قسيمة",
       "vouchers vale vales bono bonos"),
    # money: each currency is its own base (no exchange rates)
    _u("eur", "money", "eur", "1", "euro", "euro", "يورو", "euro euros"),
    _u("usd", "money", "usd", "1", "US dollar", "dólar", "دولار أمريكي",
       "dollar dollars dolar dolares"),
    # mass, base gram
    _u("mg", "mass", "g", "0.001", "milligram", "miligramo", "مليغرام",
       "milligram milligrams miligramo miligramos"),
    _u("g", "mass", "g", "1", "gram", "gramo", "غرام",
       "gr grs gram grams gramme grammes gramo gramos"),
    _u("kg", "mass", "g", "1000", "kilogram", "kilogramo", "كيلوغرام",
       "kgs kilo kilos kilogram kilograms kilogramme kilogrammes kilogramo kilogramos"),
    _u("t", "mass", "g", "1000000", "tonne", "tonelada", "طن", "tonne tonnes tonelada toneladas"),
    _u("oz", "mass", "g", "28.349523125", "ounce", "onza", "أونصة", "ounce ounces onza onzas"),
    _u("lb", "mass", "g", "453.59237", "pound", "libra", "رطل", "lbs pound pounds libra libras"),
    # volume, base millilitre
    _u("ml", "volume", "ml", "1", "millilitre", "mililitro", "مليلتر",
       "millilitre millilitres milliliter milliliters mililitro mililitros"),
    _u("cl", "volume", "ml", "10", "centilitre", "centilitro", "سنتيلتر",
       "centilitre centilitres centiliter centiliters centilitro centilitros"),
    _u("l", "volume", "ml", "1000", "litre", "litro", "لتر",
       "lt ltr ltrs litre litres liter liters litro litros"),
    _u("gal", "volume", "ml", "3785.411784", "US gallon", "galón", "غالون أمريكي",
       "gallon gallons galon galones"),
    # time, base minute
    _u("min", "time", "min", "1", "minute", "minuto", "دقيقة",
       "mins minute minutes minuto minutos"),
    _u("hour", "time", "min", "60", "hour", "hora", "ساعة", "h hr hrs hours hora horas"),
    _u("day", "time", "min", "1440", "day", "día", "يوم", "days dia dias"),
    _u("week", "time", "min", "10080", "week", "semana", "أسبوع", "weeks wk semana semanas"),
    # length, base metre; area
    _u("cm", "length", "m", "0.01", "centimetre", "centímetro", "سنتيمتر",
       "centimetre centimetres centimeter centimeters centimetro centimetros"),
    _u("m", "length", "m", "1", "metre", "metro", "متر", "metre metres meter meters metro metros"),
    _u("km", "length", "m", "1000", "kilometre", "kilómetro", "كيلومتر",
       "kilometre kilometres kilometer kilometers kilometro kilometros"),
    _u("m2", "area", "m2", "1", "square metre", "metro cuadrado", "متر مربع", "sqm"),
)


def key(text: str) -> str:
    """How a unit string is looked up: outer spaces (U+0020) dropped, A-Z lowercased."""
    return text.strip(" ").translate(_ASCII_UPPER)


def _index() -> dict[str, Unit]:
    out: dict[str, Unit] = {}
    for unit in UNITS:
        for spelling in (unit.code, *unit.synonyms):
            if out.setdefault(spelling, unit) is not unit:
                raise ValueError(f"unit spelling {spelling!r} is ambiguous")
    return out


BY_KEY: dict[str, Unit] = _index()
BY_CODE: dict[str, Unit] = {u.code: u for u in UNITS}


def lookup(text: str | None) -> Unit | None:
    """The unit a string names (code or synonym), or None if the vocabulary lacks it."""
    return BY_KEY.get(key(text)) if isinstance(text, str) else None


def compatible(a: str, b: str) -> bool:
    """Whether quantities in ``a`` and ``b`` can be compared: the same string, or two
    known units with the same base."""
    if a == b:
        return True
    ua, ub = lookup(a), lookup(b)
    return ua is not None and ub is not None and ua.base == ub.base


def convert(value: Decimal, frm: str, to: str) -> Decimal | None:
    """``value`` ``frm`` expressed in ``to``: exact, then truncated to three decimals;
    None when the two are not `compatible`."""
    if frm == to:
        return value
    ua, ub = lookup(frm), lookup(to)
    if ua is None or ub is None or ua.base != ub.base:
        return None
    exact = Fraction(value) * Fraction(ua.factor) / Fraction(ub.factor)
    thousandths = int(exact * 1000)  # int() of a Fraction truncates toward zero
    return (Decimal(thousandths) * STEP).normalize() if thousandths else Decimal(0)


def spellings(base: str) -> list[str]:
    """Every lookup key of the units with this base (for an SQL IN list)."""
    return sorted(k for k, u in BY_KEY.items() if u.base == base)


def closest(text: str, extra: tuple[str, ...] = (), n: int = 3) -> list[str]:
    """Canonical codes (or ``extra`` codes) whose spellings are nearest to ``text``."""
    names = list(BY_KEY) + list(extra)
    out: list[str] = []
    for name in difflib.get_close_matches(key(text), names, n=n * 3, cutoff=0.7):
        code = name if name in extra else BY_KEY[name].code
        if code not in out:
            out.append(code)
    return out[:n]
