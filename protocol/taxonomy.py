"""The starter category taxonomy (spec §11), labelled in English, Spanish and Arabic.

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

# path -> (English, Spanish, Arabic), in the order of LANGUAGES; spec §11 lists the same
# table.
LABELS: dict[str, tuple[str, str, str]] = {
    "food": ("Food and drink", "Comida y bebida", "طعام وشراب"),
    "food/produce": ("Fresh fruit and vegetables",
                     "Frutas y verduras frescas",
                     "فواكه وخضروات طازجة"),
    "food/bread": ("Bread and baked goods", "Pan y bollería", "خبز ومخبوزات"),
    "food/meals": ("Cooked meals", "Comidas preparadas", "وجبات مطبوخة"),
    "food/pantry": ("Dry and canned goods",
                    "Alimentos secos y en conserva",
                    "مواد غذائية جافة ومعلّبة"),
    "food/baby": ("Baby food and formula", "Alimentos y leche para bebés", "طعام وحليب للرضّع"),
    "goods": ("Things to give or lend", "Cosas para dar o prestar", "أغراض للعطاء أو الإعارة"),
    "goods/clothing": ("Clothing and shoes", "Ropa y calzado", "ملابس وأحذية"),
    "goods/furniture": ("Furniture", "Muebles", "أثاث"),
    "goods/hygiene": ("Hygiene and sanitary products",
                      "Productos de higiene",
                      "مستلزمات النظافة الشخصية"),
    "goods/medical": ("Non-prescription medical supplies",
                      "Material sanitario sin receta",
                      "مستلزمات طبية بلا وصفة"),
    "tools": ("Tools and equipment", "Herramientas y equipos", "أدوات ومعدّات"),
    "tools/hand": ("Hand tools", "Herramientas manuales", "أدوات يدوية"),
    "tools/power": ("Power tools", "Herramientas eléctricas", "أدوات كهربائية"),
    "tools/garden": ("Garden tools", "Herramientas de jardín", "أدوات الحديقة"),
    "transport": ("Getting people and things around",
                  "Llevar personas y cosas",
                  "نقل الناس والأغراض"),
    "transport/ride": ("Rides for people", "Viajes para personas", "توصيل الأشخاص"),
    "transport/delivery": ("Moving goods", "Transporte de mercancías", "نقل البضائع"),
    "housing": ("A place to stay", "Un lugar donde quedarse", "مكان للإقامة"),
    "housing/shelter": ("Emergency shelter, a night or a few",
                        "Alojamiento de emergencia, una noche o unas pocas",
                        "مأوى طارئ، لليلة أو بضع ليالٍ"),
    "housing/storage": ("Storage space", "Espacio de almacenamiento", "مساحة للتخزين"),
    "skills": ("Time and know-how", "Tiempo y conocimientos", "وقت وخبرة"),
    "skills/repair": ("Repairs", "Reparaciones", "إصلاحات"),
    "skills/plumbing": ("Plumbing", "Fontanería", "سباكة"),
    "skills/electrical": ("Electrical work", "Electricidad", "أعمال كهربائية"),
    "skills/language": ("Translation and interpreting",
                        "Traducción e interpretación",
                        "ترجمة تحريرية وشفهية"),
    "skills/tutoring": ("Tutoring and lessons", "Clases y apoyo escolar", "دروس ودعم دراسي"),
    "care": ("Care for people", "Cuidado de personas", "رعاية الأشخاص"),
    "care/childcare": ("Childcare", "Cuidado infantil", "رعاية الأطفال"),
    "care/eldercare": ("Elder care and check-ins",
                       "Cuidado y visitas a mayores",
                       "رعاية كبار السن والاطمئنان عليهم"),
    "care/pets": ("Pet care", "Cuidado de mascotas", "رعاية الحيوانات الأليفة"),
    "money": ("Funds and vouchers", "Fondos y vales", "أموال وقسائم"),
}
LANGUAGES = ("en", "es", "ar")
STARTER_TAXONOMY: dict[str, str] = {path: labels[0] for path, labels in LABELS.items()}


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
