"""tests/vectors/exchange.json (spec §9.6, §9.7): every entry reproduces and verifies, and
the fold gives exactly the state written there whatever order the logs arrive in (each
log split in two deliveries, the logs interleaved in every order), also after a rebuild.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from exchange_helpers import fold_state, over_committed
from test_vectors import from_json

from node.services.ledger import open_ledger
from protocol import Identity, create_entry, verify_run
from protocol.entry import Entry

VECTORS = Path(__file__).resolve().parent / "vectors"
VEC = json.loads((VECTORS / "exchange.json").read_text(encoding="utf-8"))


def logs() -> dict[str, list[Entry]]:
    return {name: verify_run([(bytes.fromhex(e["signed_header"]), bytes.fromhex(e["payload"]))
                              for e in items]) for name, items in VEC["logs"].items()}


def test_generator_reproduces_the_file() -> None:
    spec = importlib.util.spec_from_file_location("generate", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.dump(gen.build_exchange()) == (VECTORS / "exchange.json").read_text(
        encoding="utf-8"), "exchange.json is stale: run python tests/vectors/generate.py"


def test_entries_reproduce_and_verify() -> None:
    keys = {i["name"]: bytes.fromhex(i["secret_key"]) for i in VEC["identities"]}
    for name, items in VEC["logs"].items():
        previous = None
        for vec in items:
            me = Identity.from_secret(keys[name])
            made = create_entry(me, vec["kind"], from_json(vec["content"]), previous=previous,
                                timestamp=vec["timestamp"])
            assert made.raw.hex() == vec["signed_header"], vec["label"]
            assert made.payload.hex() == vec["payload"], vec["label"]
            previous = made
    kinds = {e["kind"] for items in VEC["logs"].values() for e in items}
    assert kinds == {"offer", "need", "claim", "accept", "decline", "fulfil"}
    assert any("for_need" in e["content"] for e in VEC["logs"]["dora"])
    assert any("from_offer" in e["content"] for e in VEC["logs"]["eli"])


def deliveries() -> list[list[tuple[str, int, int]]]:
    """(log, start, end) slices: each log in two parts, interleaved in every order."""
    sizes = {name: len(items) for name, items in VEC["logs"].items()}
    out = []
    for order in itertools.permutations(sizes):
        halves = [(n, 0, sizes[n] // 2) for n in order] + \
                 [(n, sizes[n] // 2, sizes[n]) for n in order]
        out.append(halves)
        out.append([(n, 0, sizes[n]) for n in reversed(order)])
    return out


def expected() -> dict[str, Any]:
    return {"listings": {v["id"]: (v["committed"], v["fulfilled"], v["status"])
                         for v in VEC["listings"].values()},
            "claims": {v["id"]: (v["status"], v["committed"], v["drawn"])
                       for v in VEC["claims"].values()}}


@pytest.mark.parametrize("plan", deliveries(), ids=lambda p: "-".join(
    f"{n}{a}:{b}" for n, a, b in p))
def test_fold_gives_the_vector_state_in_any_order(tmp_path: Path, plan) -> None:
    entries = logs()
    ledger = open_ledger(tmp_path / "node.db", Identity.generate())
    try:
        for name, start, end in plan:
            part = entries[name][start:end]
            if part:
                ledger.transaction(lambda c, p=part: ledger.ingest(c, p[0].author, p))
        got = fold_state(ledger.conn)
        assert got == expected()
        assert over_committed(ledger.conn) == []
        ledger.rebuild()
        assert fold_state(ledger.conn) == got
    finally:
        ledger.close()
