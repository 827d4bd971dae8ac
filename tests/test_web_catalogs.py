"""Every shipped language translates every word the web app shows, as it is written today.

The messages are extracted from node/web at test time with the same map and keywords as
`make messages`, so a string added to a template fails here until someone runs
`make messages` and translates it: a Spanish-speaking coordinator never meets English
half-way through a page.
"""

from __future__ import annotations

import gettext
import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

from node.web import i18n

WEB = Path(i18n.__file__).parent
KEYWORDS = {**DEFAULT_KEYWORDS, "_": None, "gettext": None, "ngettext": (1, 2)}
FIX = "run `make messages` and translate the new entries"
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[diouxXeEfFgGcrsa%]")
OTHERS = [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT]


def extracted() -> dict[str, Message]:
    """The app's messages as they are in the source now (singular msgid -> message)."""
    with (WEB / "babel.cfg").open() as fp:
        method_map, options_map = parse_mapping_cfg(fp)
    out: dict[str, Message] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
            str(WEB), method_map, options_map, keywords=KEYWORDS, strip_comment_tags=True):
        msg = Message(message, context=context)
        key = msg.id[0] if msg.pluralizable else msg.id
        if key:
            out.setdefault(key, msg)
    return out


def catalog(lang: str) -> Catalog:
    with (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").open("rb") as fp:
        return read_po(fp, locale=lang)


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text)) - {"%%"}


def problems(source: dict[str, Message], cat: Catalog) -> list[str]:
    """One line per msgid that a reader of this language would see wrong, or not at all."""
    out = []
    for key, want in source.items():
        have = cat.get(key, context=want.context)
        if have is None:
            out.append(f"missing: {key!r}")
            continue
        if want.pluralizable != have.pluralizable:
            out.append(f"plural form differs from the source: {key!r}")
            continue
        strings = list(have.string) if have.pluralizable else [have.string]
        if have.pluralizable and len(strings) < cat.num_plurals:
            strings += [""] * (cat.num_plurals - len(strings))
        if not all(s and s.strip() for s in strings):
            out.append(f"untranslated: {key!r}")
        if have.fuzzy:
            out.append(f"fuzzy (check it, then remove the flag): {key!r}")
        if want.python_format:
            ids = list(want.id) if want.pluralizable else [want.id]
            for i, s in enumerate(strings):
                if s and placeholders(s) != placeholders(ids[min(i, len(ids) - 1)]):
                    out.append(f"placeholders differ in form {i}: {key!r} -> {s!r}")
    return out


def test_the_extractor_sees_the_app():
    """Guard the guard: an empty extraction would let every catalog pass."""
    source = extracted()
    assert len(source) > 50
    assert "Sign in" in source  # a template string
    assert "Give a date and a time." in source  # a Python string
    assert source["%(num)d claim waiting for an answer"].pluralizable


@pytest.mark.parametrize("lang", OTHERS)
def test_every_message_is_translated(lang):
    cat = catalog(lang)
    assert not cat.fuzzy, (f"{lang}: the catalog header is missing or marked fuzzy; "
                           "restore it or remove the flag")
    found = problems(extracted(), cat)
    assert not found, (f"{lang}: {len(found)} message(s) not ready; {FIX}:\n  "
                       + "\n  ".join(found))


@pytest.mark.parametrize("lang", OTHERS)
def test_catalog_keeps_its_header(lang):
    """Language and plural rules travel in the header; `make messages` must not drop it."""
    text = (i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po").read_text("utf-8")
    assert f'"Language: {lang}\\n"' in text and '"Plural-Forms: ' in text, (
        f"{lang}: the catalog lost its header (msgid \"\": Language, Plural-Forms); restore "
        "it and make sure `pybabel update` in the Makefile runs without --omit-header")


def test_catalogs_compile_and_answer():
    catalogs = i18n.load_catalogs()
    source = extracted()
    for lang in OTHERS:
        cat = catalog(lang)
        assert lang in catalogs, f"{lang}: no catalog was loaded"
        for key, want in source.items():
            have = cat.get(key, context=want.context)
            if have is None or want.pluralizable or not have.string:
                continue
            assert catalogs[lang].gettext(key) == have.string, f"{lang}: {key!r} not compiled"
        for want in (m for m in source.values() if m.pluralizable):
            have = cat.get(want.id[0], context=want.context)
            if have is None or not all(have.string):
                continue  # reported by test_every_message_is_translated
            form = gettext.c2py(cat.plural_expr)
            for n in (1, 5):
                assert catalogs[lang].ngettext(*want.id, n) == have.string[form(n)], (
                    f"{lang}: {want.id[0]!r} not compiled for n={n}")
