"""Quantities across units, and claims that fill one of our own listings (spec §9.6).

A claim on another group's offer may name one of our needs (`for_need`), a claim on its
need one of our offers (`from_offer`); once the other owner accepts, the fold commits the
accepted quantity on our listing too, converted to its unit. Every quantity a person
states (a claim, an accept, a fulfil) may be in any unit that converts to the listing's
and is written in the listing's unit (protocol/units.py: exact, then truncated to three
decimals), so the fold compares like with like.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import Any

from protocol import units

from ..state import exchange
from ..state.exchange import LINKS, ZERO, capacity, dec, in_unit, quantity_of, unit
from ..store.ledger import Ledger
from . import vocabulary
from .errors import Conflict, Invalid
from .values import number

MAX_VALUE = Decimal(10) ** 12


def in_listing_unit(row: sqlite3.Row, value: str, stated: str | None,
                    field: str = "quantity") -> str:
    """A stated quantity (decimal text, unit or None for the listing's own) as decimal
    text in the listing's unit."""
    mine = unit(row)
    if mine is None:
        raise Invalid("invalid-field", f"this {row['kind']} has no quantity; send no "
                      "quantity (it is taken whole)", field=field)
    if stated is None:
        return value
    code = vocabulary.unit_code(stated, vocabulary.Declared(), field=f"{field}.unit",
                                also=mine)
    converted = units.convert(Decimal(value), code, mine)
    if converted is None:
        raise Invalid("unit-mismatch", f"the {row['kind']} is counted in {mine!r}; "
                      f"{stated!r} does not convert to it (units convert within one "
                      "dimension, e.g. g, kg and lb; GET /api/v1/units lists them)",
                      field=field)
    if not converted or converted >= MAX_VALUE:
        raise Invalid("invalid-field", f"{value} {code} is {exchange.text(converted)} "
                      f"{mine}: state a quantity of at least 0.001 {mine} and below 10^12",
                      field=field)
    return exchange.text(converted)


def left(row: sqlite3.Row) -> Decimal:
    return max(ZERO, capacity(row) - dec(row["committed"]))


def free(conn: sqlite3.Connection, row: sqlite3.Row) -> Decimal:
    """What is left of one of our listings and not yet promised by our own pending claims
    that name it (they commit on it once their owners accept)."""
    promised = ZERO
    mine = unit(row)
    for draw in conn.execute(f"SELECT id FROM responses WHERE target = ? AND kind IN "
                             f"{tuple(LINKS)!r}", (row["id"],)).fetchall():
        claim = conn.execute("SELECT * FROM claims WHERE id = ?", (draw["id"],)).fetchone()
        if claim is None or exchange.decision(conn, claim) is not None:
            continue  # answered: an accept is in `committed` already, a decline is nothing
        asked = in_unit(quantity_of(conn, claim["id"]), mine) if mine else None
        promised += asked if asked is not None else left(row)
    return max(ZERO, left(row) - promised)


def _problem(row: sqlite3.Row, now: int, field: str) -> Conflict | None:
    if row["withdrawn"]:
        return Conflict("withdrawn", f"this node's {row['kind']} is withdrawn", field=field)
    if row["available_until"] is not None and row["available_until"] < now:
        return Conflict("expired", f"this node's {row['kind']} is expired", field=field)
    return None


def attach(ledger: Ledger, conn: sqlite3.Connection, target: sqlite3.Row, link: str,
           own_id: str, content: dict[str, Any], now: int) -> None:
    """Name our own listing ``own_id`` on a claim on ``target`` (content, in place): it
    must be ours, of the other kind, live, in a unit that converts, and able to take the
    claim's quantity, which defaults to what both sides still have."""
    want = LINKS[link]
    if target["kind"] == want:
        other = "an offer" if want == "need" else "a need"
        raise Invalid("invalid-field", f"{link} goes with a claim on {other}", field=link)
    own = conn.execute("SELECT * FROM listings WHERE id = ? AND kind = ?",
                       (own_id, want)).fetchone()
    if own is None or own["author"] != ledger.identity.node_id:
        raise Invalid("not-own", f"{link} must name one of this node's own {want}s; "
                      f"{own_id} is not one", field=link)
    problem = _problem(own, now, link)
    if problem is not None:
        raise problem
    room = free(conn, own)
    if room <= 0:
        raise Conflict("nothing-available", f"this node's {want} has nothing left that is "
                       "not committed or promised", field=link)
    theirs, mine = unit(target), unit(own)
    if theirs is not None and mine is not None:
        if not units.compatible(theirs, mine):
            raise Invalid("unit-mismatch", f"the {target['kind']} is counted in {theirs!r} "
                          f"and this node's {want} in {mine!r}: they do not convert",
                          field=link)
        if "quantity" in content:
            asked = Decimal(content["quantity"]["value"])
            here = units.convert(asked, theirs, mine)
            if here is not None and here > room:
                raise Conflict("not-enough", f"the claim asks {number(str(asked))} {theirs}, "
                               f"which is {number(exchange.text(here))} {mine}, but this "
                               f"node's {want} has only {number(exchange.text(room))} {mine} "
                               "left", field=link)
        else:
            there = units.convert(room, mine, theirs) or ZERO
            value = min(left(target), there)
            if value <= 0:
                raise Conflict("not-enough", f"what this node's {want} has left is less "
                               f"than 0.001 {theirs}", field=link)
            content["quantity"] = {"value": exchange.text(value), "unit": theirs}
    content[link] = bytes.fromhex(own_id)
