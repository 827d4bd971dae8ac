"""Break the fold's authority rules one at a time and check that some test notices.

    .venv/bin/python tests/tools/mutate.py              # every mutation
    .venv/bin/python tests/tools/mutate.py --list       # their names
    .venv/bin/python tests/tools/mutate.py --only ledger-block projection-redact

Each mutation is a deliberate one-line bug (a few touch two lines of the same rule) given
as exact source text and its replacement; the text must occur exactly once, so a mutation
whose code has moved fails loudly instead of testing nothing. The script works on a copy
of the checkout in a temporary directory (node/, protocol/, tests/, docs/, README.md,
pyproject.toml) with PYTHONPATH pointing at it, so it never touches the working tree and
is safe to run while others edit it. It first checks that the unmutated copy passes,
then applies each mutation, runs its test files, restores the file, and prints
"mutation -> killed (by the tests that failed) / survived". Exit status 1 if any
mutation survived or the baseline failed. Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("node", "protocol", "tests", "docs", "README.md", "pyproject.toml")
FOLD_TESTS = ("tests/test_fold_authority.py",)
RUN_TIMEOUT_S = 900


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the rule it breaks, in words
    path: str
    edits: tuple[tuple[str, str], ...]  # (exact old text, new text), each found once
    tests: tuple[str, ...] = FOLD_TESTS


EXCHANGE = "node/state/exchange.py"
PROJECTION = "node/state/projection.py"
OWNER_GUARD = ('        if listing is None or listing["author"] != author:\n'
               '            return  # only the owner answers a claim',
               '        if listing is None:\n'
               '            return  # only the owner answers a claim')

MUTATIONS = (
    Mutation("exchange-non-owner-accept-commits",
             "a non-owner's accept commits quantity (the issue's first example)",
             EXCHANGE, (OWNER_GUARD, (
                 '"SELECT id, kind, claim, claimant FROM responses WHERE target = ? AND '
                 'author = ? "',
                 '"SELECT id, kind, claim, claimant FROM responses WHERE target = ? AND '
                 '? != \'\' "'))),
    Mutation("exchange-non-owner-answer-recorded",
             "a non-owner's accept or decline is recorded as an answer", EXCHANGE,
             (OWNER_GUARD,)),
    Mutation("exchange-claimant-declines",
             "a decline is checked like a fulfil (the claimant may decline)", EXCHANGE,
             (('    if kind in ("accept", "decline"):\n        if listing is None',
               '    if kind == "accept":\n        if listing is None'),)),
    Mutation("exchange-anyone-fulfils",
             "anyone's fulfil records a hand-over", EXCHANGE,
             (('    elif listing is not None and author not in (claimant, listing["author"]):',
               '    elif False:'),)),
    Mutation("ledger-block",
             "a blocked author's log is stored (the issue's second example)",
             "node/store/ledger.py",
             (('        if conn.execute("SELECT 1 FROM blocks WHERE author = ?", '
               '(node_id(author),)).fetchone():',
               '        if False:'),)),
    Mutation("erasure-redact",
             "a non-author's redact erases a payload (the issue's third example)",
             "node/state/erasure.py",
             (('    found = [s for t, a in targets if (s := _stored(conn, t)) is not None '
               'and s.author == a]',
               '    found = [s for t, a in targets if (s := _stored(conn, t)) is not None]'),)),
    Mutation("projection-update",
             "anyone's update changes a listing", PROJECTION,
             (('    elif kind == "update":\n'
               '        row = _own_listing(conn, content["target"], author_id)',
               '    elif kind == "update":\n'
               '        row = conn.execute("SELECT * FROM listings WHERE id = ?", '
               '(content["target"].hex(),)).fetchone()'),)),
    Mutation("projection-withdraw",
             "anyone's withdraw takes a listing down", PROJECTION,
             (('    elif kind == "withdraw":\n'
               '        row = _own_listing(conn, content["target"], author_id)',
               '    elif kind == "withdraw":\n'
               '        row = conn.execute("SELECT * FROM listings WHERE id = ?", '
               '(content["target"].hex(),)).fetchone()'),)),
    Mutation("projection-trust-as-own",
             "any log's trust / untrust is folded as this node's own", PROJECTION,
             (('            (entry.author, content["peer"], content.get("url", ""), '
               'int(kind == "trust"),',
               '            (self_author, content["peer"], content.get("url", ""), '
               'int(kind == "trust"),'),)),
    Mutation("trust-direct-peers",
             "any author's trust edge makes this node talk to (and serve) a peer",
             "node/state/trust.py",
             (('"SELECT peer, url FROM trust_edges WHERE author = ? AND active = 1 '
               'ORDER BY peer"',
               '"SELECT peer, url FROM trust_edges WHERE ? IS NOT NULL AND active = 1 '
               'ORDER BY peer"'),)),
)


class MutationGone(Exception):
    """The source text a mutation replaces is not (exactly once) in the file any more."""


def copy_checkout(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.exists():
            shutil.copy2(src, dest / name)


def apply(text: str, mutation: Mutation) -> str:
    for old, new in mutation.edits:
        count = text.count(old)
        if count != 1:
            raise MutationGone(f"{mutation.name}: expected the text once in {mutation.path}, "
                               f"found it {count} times (the code changed: update the "
                               f"mutation):\n{old}")
        text = text.replace(old, new)
    return text


def env_for(copy: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIDMESH_")}
    env["PYTHONPATH"] = str(copy)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(copy: Path) -> None:
    """The copy, not the editable install of the working tree, must be what runs."""
    out = subprocess.run([sys.executable, "-c", "import node, protocol; "
                          "print(node.__file__); print(protocol.__file__)"],
                         cwd=copy, env=env_for(copy), capture_output=True, text=True,
                         check=True).stdout.split()
    for path in out:
        if not Path(path).resolve().is_relative_to(copy.resolve()):
            sys.exit(f"mutate: imports resolve outside the copy ({path}); refusing to run")


def run_tests(copy: Path, tests: tuple[str, ...]) -> tuple[int, str]:
    cmd = [sys.executable, "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider",
           *tests]
    try:
        done = subprocess.run(cmd, cwd=copy, env=env_for(copy), capture_output=True,
                              text=True, timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {RUN_TIMEOUT_S} s"
    return done.returncode, done.stdout + done.stderr


def failures(output: str) -> str:
    """The failing tests, by name (file and test), from pytest's -rf summary."""
    found = [f.split("/")[-1] for f in re.findall(r"^FAILED (\S+)", output, re.MULTILINE)]
    if len(found) > 2:
        found = [*found[:2], f"{len(found) - 2} more"]
    return ", ".join(found) or "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutations")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    if args.only and len(chosen) != len(set(args.only)):
        known = ", ".join(m.name for m in MUTATIONS)
        parser.error(f"unknown mutation among {args.only}; known: {known}")
    if args.list:
        for m in chosen:
            print(f"{m.name:38} {m.path:26} {m.what}")
        return 0
    with tempfile.TemporaryDirectory(prefix="aidmesh-mutate-") as tmp:
        copy = Path(tmp)
        copy_checkout(copy)
        check_imports(copy)
        try:  # every mutation must still apply before anything runs
            for m in chosen:
                apply((copy / m.path).read_text(), m)
        except MutationGone as exc:
            print(f"mutate: {exc}", file=sys.stderr)
            return 2
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        code, output = run_tests(copy, tests)
        if code != 0:
            print(output[-4000:])
            print("mutate: the unmutated copy fails its tests; fix that first")
            return 1
        rows = []
        for m in chosen:
            target = copy / m.path
            original = target.read_text()
            target.write_text(apply(original, m))
            try:
                code, output = run_tests(copy, m.tests)
            finally:
                target.write_text(original)
            if code == 1:
                result, by = "killed", failures(output)
            elif code == 0:
                result, by = "SURVIVED", "-"
            else:
                result, by = "ERROR", f"pytest exit {code}: " + output.strip()[-300:]
            rows.append((m.name, result, by))
            print(f"{m.name:38} -> {result:8} {by}", flush=True)
    print()
    print("| mutation | rule broken | result | killed by |")
    print("|---|---|---|---|")
    whats = {m.name: m.what for m in MUTATIONS}
    for name, result, by in rows:
        print(f"| {name} | {whats[name]} | {result} | {by} |")
    return 0 if all(r == "killed" for _, r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
