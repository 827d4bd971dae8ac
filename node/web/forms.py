"""Form fields to the JSON bodies the services take, and back.

A form says things the way people do ("Bread and baked goods", "20", "until 18:00 today",
"Northside"); the services take the API's JSON. Checks here only make messages kinder
(in the viewer's language, next to the field); the services still check everything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from protocol.kinds import URGENCIES
from protocol.taxonomy import LABELS
from protocol.taxonomy import LANGUAGES as LABEL_LANGUAGES

from ..services import areas, vocabulary
from ..services.errors import ServiceError
from ..services.values import typed_number
from .i18n import Texts

ACTIONS = ("transfer", "lend", "deliverService", "use")
# Service field names -> the form's input names, for errors shown next to the input.
LISTING_FIELDS = {"title": "title", "description": "description", "category": "category",
                  "quantity": "quantity", "quantity.value": "quantity",
                  "quantity.unit": "unit", "available_until": "until",
                  "available_from": "from", "area": "area", "location": "area",
                  "tags": "tags", "urgency": "urgency", "action": "action"}
CLAIM_FIELDS = {"quantity": "quantity", "quantity.value": "quantity",
                "quantity.unit": "quantity", "for_need": "link", "from_offer": "link",
                "private": "address", "private.address": "address",
                "private.phone": "phone", "private.notes": "notes",
                "message": "message"}


@dataclass
class Checked:
    """A form read into a service body, or the errors to show next to its fields."""

    body: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def category_labels(texts: Texts, extra: list[str]) -> list[tuple[str, str]]:
    """(value to show and send, path) for the picker: labels in the viewer's language."""
    index = _label_index(texts)
    out = [(labels[index], path) for path, labels in LABELS.items()]
    return out + [(path, path) for path in extra if path not in LABELS]


def category_path(text: str, extra: list[str]) -> str | None:
    return vocabulary.label_path(text, extra)


def category_label(path: str, texts: Texts) -> str:
    labels = LABELS.get(path)
    return labels[_label_index(texts)] if labels else path


def _label_index(texts: Texts) -> int:
    """Which of the taxonomy's labels is in the viewer's language (English if none)."""
    return LABEL_LANGUAGES.index(texts.lang) if texts.lang in LABEL_LANGUAGES else 0


def _local(text: str, tz_minutes: str) -> int | None:
    """A datetime-local value (no zone) to ms: the browser's offset when its script sent
    one, else the node's own zone."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        try:
            offset = -int(tz_minutes)
            zone = timezone(timedelta(minutes=offset)) if abs(offset) <= 14 * 60 else None
        except ValueError:
            zone = None
        moment = moment.replace(tzinfo=zone) if zone else moment.astimezone()
    return int(moment.timestamp() * 1000)


def default_until(now: datetime | None = None) -> str:
    """Today at 18:00, or tomorrow's if that has passed: how groups hand out food."""
    now = now or datetime.now().astimezone()
    until = now.replace(hour=18, minute=0, second=0, microsecond=0)
    if until <= now + timedelta(minutes=30):
        until += timedelta(days=1)
    return until.strftime("%Y-%m-%dT%H:%M")


def amount(text: str, texts: Texts, errors: dict[str, str], name: str = "quantity"
           ) -> str | None:
    """A quantity as typed ('20', '2,5', '1.5') -> decimal text, or an error."""
    if not text.strip():
        return None
    value = typed_number(text)
    if value is None:
        errors[name] = texts.gettext("Write a number above zero, like 20 or 2.5.")
    return value


def listing(form: Any, kind: str, texts: Texts, extra_categories: list[str],
            named_areas: list[areas.Area], *, partial: bool = False) -> Checked:
    _ = texts.gettext
    out = Checked()
    body, errors = out.body, out.errors
    title = form.get("title", "").strip()
    if title:
        body["title"] = title
    elif not partial:
        errors["title"] = _("Say in a few words what it is.")
    body["description"] = form.get("description", "").strip()
    category = form.get("category", "").strip()
    if category:
        path = category_path(category, extra_categories)
        if path is None:
            errors["category"] = _("We do not know this category. Pick one from the list.")
        else:
            body["category"] = path
    elif not partial:
        errors["category"] = _("Pick a category from the list.")
    action = form.get("action", "transfer")
    body["action"] = action if action in ACTIONS else "transfer"
    value = amount(form.get("quantity", ""), texts, errors)
    if value is not None:
        body["quantity"] = {"value": value, "unit": form.get("unit", "each") or "each"}
    tz = form.get("tz", "")
    for name, key in (("from", "available_from"), ("until", "available_until")):
        text = form.get(name, "").strip()
        if not text:
            continue
        ms = _local(text, tz)
        if ms is None:
            errors[name] = _("Give a date and a time.")
        else:
            body[key] = datetime.fromtimestamp(ms / 1000, UTC).isoformat()
    chosen = form.get("area", "")
    if chosen == "here":
        try:
            body["area"] = areas.cell_of(float(form.get("lat", "")), float(form.get("lng", "")))
        except (ValueError, ServiceError):
            errors["area"] = _("Your location did not arrive. Allow it in the browser, or "
                               "pick one of the group's areas.")
    elif chosen:
        match = next((a for a in named_areas if a.name == chosen), None)
        if match is None:
            errors["area"] = _("Pick one of the group's areas.")
        else:
            body["area"] = match.cell
    if kind == "need":
        urgency = form.get("urgency", "normal")
        body["urgency"] = urgency if urgency in URGENCIES else "normal"
    tags = [t.strip() for t in form.get("tags", "").split(",") if t.strip()]
    if tags or not partial:
        body["tags"] = tags[:20]
    body["language"] = texts.lang
    return out


def claim(form: Any, texts: Texts) -> Checked:
    out = Checked()
    value = amount(form.get("quantity", ""), texts, out.errors)
    if value is not None:
        out.body["quantity"] = value
    private = {key: form.get(key, "").strip() for key in ("address", "phone", "notes")}
    private = {k: v for k, v in private.items() if v}
    if private:
        out.body["private"] = private
    message = form.get("message", "").strip()
    if message:
        out.body["message"] = message
    link = form.get("link", "")
    if link:
        key, _sep, target = link.partition(":")
        if key in ("for_need", "from_offer"):
            out.body[key] = target
    return out


def form_values(row: dict[str, Any], texts: Texts) -> dict[str, str]:
    """A listing as the edit form shows it."""
    values = {"title": row.get("title", ""), "description": row.get("description", ""),
              "category": category_label(row.get("category", ""), texts),
              "action": row.get("action", "transfer"), "urgency": row.get("urgency", ""),
              "tags": ", ".join(row.get("tags", []))}
    quantity = row.get("quantity")
    if quantity:
        values["quantity"], values["unit"] = str(quantity["value"]), quantity["unit"]
    for name, key in (("from", "available_from"), ("until", "available_until")):
        if row.get(key):
            values[name] = datetime.fromisoformat(row[key]).astimezone().strftime(
                "%Y-%m-%dT%H:%M")
    return values
