"""Entry verification throughput against a raw Ed25519 baseline measured in the same run.

    python bench/verify.py [--n 20000] [--authors 20] [--page 500] [--repeat 2]

Builds N signed offer entries spread over several authors, then times:
  raw     cryptography's Ed25519 verify of the same N (signature, message) pairs: the baseline
  entry   verify_entry(raw, payload) per entry: decode + checks + its own signature + payload
  run     verify_run per author over sync-sized pages (one signature per page, Rule A)
each on 1 and 2 threads (Ed25519 releases the GIL), best of --repeat rounds (the rounds
interleave the paths so a noisy neighbour hits them alike). Prints figures and ratios; it
never passes or fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # allow `python bench/verify.py` without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cryptography
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from protocol import SIGNING_PREFIX, Entry, Identity, create_entry, verify_entry, verify_run
from protocol.sync import PAGE_MAX_ENTRIES

CATEGORIES = ["food/bread", "food/produce", "food/meals", "goods/clothing", "tools/hand",
              "transport/ride", "housing/shelter", "skills/plumbing", "care/childcare"]
UNITS = ["loaf", "kg", "item", "ride", "night", "hour", "box"]
AREAS = ["881f1d4a91fffff", "881f1d4a93fffff", "881f1d4a95fffff", "871f1d4a9ffffff"]
TAGS = ["vegan", "gluten-free", "wheelchair", "weekend", "urgent", "kids", "pickup"]


def offer(rng: random.Random, i: int, now: int) -> dict:
    start = now + rng.randrange(0, 86_400_000)
    return {
        "title": f"{rng.randint(1, 40)} loaves of sourdough bread, batch {i}",
        "description": ("Baked this morning at the community kitchen; bring a bag. "
                        "Ask at the side door, the bell does not work. ") * rng.randint(1, 3),
        "action": rng.choice(["transfer", "lend", "deliverService"]),
        "category": rng.choice(CATEGORIES),
        "quantity": {"value": str(rng.randint(1, 50)), "unit": rng.choice(UNITS)},
        "area": rng.choice(AREAS),
        "available_from": start,
        "available_until": start + 6 * 3_600_000,
        "tags": rng.sample(TAGS, rng.randint(0, 3)),
        "language": rng.choice(["en", "es", "de", "pt-BR"]),
    }


def build(n: int, authors: int, seed: int = 7) -> list[list[Entry]]:
    rng = random.Random(seed)
    ids = [Identity.from_secret(rng.randbytes(32)) for _ in range(authors)]
    now = 1_763_700_000_000
    logs: list[list[Entry]] = [[] for _ in ids]
    for i in range(n):
        a = i % authors
        prev = logs[a][-1] if logs[a] else None
        logs[a].append(create_entry(ids[a], "offer", offer(rng, i, now), previous=prev,
                                    timestamp=now + i))
    return logs


def split(items: Sequence, parts: int) -> list[Sequence]:
    size = -(-len(items) // parts)
    return [items[i:i + size] for i in range(0, len(items), size)]


def timed(threads: int, work: Sequence, fn: Callable[[Sequence], int]) -> tuple[float, int]:
    """Run ``fn`` over ``threads`` slices of ``work``; returns (seconds, items done)."""
    slices = split(work, threads)
    t0 = time.perf_counter()
    if threads == 1:
        done = fn(slices[0])
    else:
        with ThreadPoolExecutor(threads) as pool:
            done = sum(pool.map(fn, slices))
    return time.perf_counter() - t0, done


def raw_verify(pairs: Sequence[tuple[Ed25519PublicKey, bytes, bytes]]) -> int:
    for key, sig, msg in pairs:
        key.verify(sig, msg)  # raises InvalidSignature on failure
    return len(pairs)


def entry_verify(items: Sequence[tuple[bytes, bytes]]) -> int:
    for raw, payload in items:
        verify_entry(raw, payload)
    return len(items)


def make_run_verify(page: int) -> Callable[[Sequence[list[Entry]]], int]:
    def run_verify(logs: Sequence[list[Entry]]) -> int:
        done = 0
        for log in logs:
            previous = None
            for i in range(0, len(log), page):
                items = [(e.raw, e.payload) for e in log[i:i + page]]
                out = verify_run(items, previous=previous)
                previous = out[-1]
                done += len(out)
        return done
    return run_verify


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000, help="entries (default 20000)")
    ap.add_argument("--authors", type=int, default=20, help="authors (default 20)")
    ap.add_argument("--page", type=int, default=PAGE_MAX_ENTRIES,
                    help=f"entries per verify_run page (default {PAGE_MAX_ENTRIES})")
    ap.add_argument("--repeat", type=int, default=2, help="rounds; best is kept (default 2)")
    ap.add_argument("--quick", action="store_true", help="4,000 entries, one round")
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.repeat = 4_000, 1

    t0 = time.perf_counter()
    logs = build(args.n, args.authors)
    entries = [e for log in logs for e in log]
    build_s = time.perf_counter() - t0
    keys = {log[0].author: Ed25519PublicKey.from_public_bytes(log[0].author) for log in logs}
    pairs = [(keys[e.author], e.signature, SIGNING_PREFIX + e.header_bytes) for e in entries]
    items = [(e.raw, e.payload) for e in entries]
    payload_avg = sum(len(e.payload) for e in entries) / len(entries)
    header_avg = sum(len(e.raw) for e in entries) / len(entries)
    pages = sum(-(-len(log) // args.page) for log in logs)

    print(f"aidmesh bench/verify.py: {len(entries)} offer entries by {len(logs)} authors "
          f"(signed header {header_avg:.0f} B, payload {payload_avg:.0f} B on average); "
          f"built and signed in {build_s:.1f} s")
    print(f"python {platform.python_version()}, cryptography {cryptography.__version__}, "
          f"{os.cpu_count()} CPUs; verify_run pages of {args.page} -> {pages} signatures "
          "checked for the run path")

    run_verify = make_run_verify(args.page)
    paths = [
        ("raw Ed25519 verify (baseline)", pairs, raw_verify),
        ("verify_entry(raw, payload)", items, entry_verify),
        ("verify_run per author", logs, run_verify),
    ]
    best: dict[tuple[str, int], float] = {}
    for _ in range(max(1, args.repeat)):
        for threads in (1, 2):
            for name, work, fn in paths:
                seconds, done = timed(threads, work, fn)
                assert done == len(entries)
                key = (name, threads)
                best[key] = min(seconds, best.get(key, seconds))
    rows = []
    for threads in (1, 2):
        base = len(entries) / best[(paths[0][0], threads)]
        for name, _, _ in paths:
            seconds = best[(name, threads)]
            rate = len(entries) / seconds
            rows.append((name, threads, seconds, rate, rate / base))

    print()
    head = f"{'path':<32} {'threads':>7} {'seconds':>8} {'entries/s':>11} {'x raw':>7}"
    print(head)
    print("-" * len(head))
    for name, threads, seconds, rate, ratio in rows:
        print(f"{name:<32} {threads:>7} {seconds:>8.2f} {rate:>11,.0f} {ratio:>7.2f}")
    print()
    print(f"These are figures, not pass/fail (best of {max(1, args.repeat)} rounds): 'x raw' is "
          "entries/s divided by the raw Ed25519 baseline measured above with the same thread "
          "count.")


if __name__ == "__main__":
    main()
