"""Screening and verifying pulled pages: only what was asked, one signature per run.

Screening runs first and costs no signature: a frame of an author we did not ask for, or
not at the position we asked for, is dropped and counted against the peer (spec §14.3).
"""

from __future__ import annotations

from protocol import Entry, ProtocolError, decode_header, verify_chain

from ..store.ledger import now_ms


def group(frames: list[tuple[bytes, bytes | None]]
           ) -> tuple[dict[bytes, list[tuple[Entry, bytes | None]]], str | None]:
    """Decode each header once and group frames by author, in stream order.

    A frame whose header does not even decode ends the page there: without a valid
    header we cannot tell whose log it belongs to, so nothing after it is trusted.
    """
    groups: dict[bytes, list[tuple[Entry, bytes | None]]] = {}
    for raw, payload in frames:
        try:
            entry = decode_header(raw)
        except ProtocolError as exc:
            return groups, f"{exc.code}: {exc.detail}"
        groups.setdefault(entry.header.author, []).append((entry, payload))
    return groups, None


def screen(groups: dict[bytes, list[tuple[Entry, bytes | None]]], expect: dict[bytes, int]
           ) -> tuple[dict[bytes, list[tuple[Entry, bytes | None]]], int, str | None]:
    """Keep each asked author's frames from the seq ``expect`` names, contiguously.

    ``expect`` maps every author of the pull request to the seq its next frame must have
    in this response; it is moved along, and an author whose frames go astray is removed
    (the rest of its frames in this response are dropped too). Returns the kept frames,
    how many were dropped, and why the first of them was.
    """
    kept: dict[bytes, list[tuple[Entry, bytes | None]]] = {}
    dropped = 0
    reason: str | None = None
    for author, items in groups.items():
        nxt = expect.get(author)
        if nxt is None:
            dropped += len(items)
            reason = reason or f"not-asked: entries of am{author.hex()} were not asked for"
            continue
        run = []
        for entry, payload in items:
            if entry.seq != nxt:
                break
            run.append((entry, payload))
            nxt += 1
        if len(run) < len(items):
            dropped += len(items) - len(run)
            reason = reason or (f"seq-gap: am{author.hex()} seq {items[len(run)][0].seq} "
                                f"where seq {nxt} was asked for")
            del expect[author]
        else:
            expect[author] = nxt
        if run:
            kept[author] = run
    return kept, dropped, reason


def verify_groups(groups: dict[bytes, list[tuple[Entry, bytes | None]]],
                   previous: dict[bytes, Entry | None]
                   ) -> dict[bytes, tuple[list[Entry], str | None]]:
    """Verify each author's run; on failure keep the valid prefix and report the rest."""
    now = now_ms()
    out: dict[bytes, tuple[list[Entry], str | None]] = {}
    for author, items in groups.items():
        prev = previous.get(author)
        if prev is not None:  # skip what we already hold (a concurrent pull stored it)
            items = [(e, p) for e, p in items if e.seq > prev.seq]
            if not items:
                continue
        entries, payloads = [e for e, _ in items], [p for _, p in items]
        try:
            out[author] = (verify_chain(entries, payloads, previous=prev, now_ms=now), None)
            continue
        except ProtocolError as exc:
            first_error = f"{exc.code}: {exc.detail}"
        good: list[Entry] = []
        for entry, payload in items:  # one signature per entry keeps the honest prefix
            try:
                good.extend(verify_chain([entry], [payload], now_ms=now,
                                         previous=good[-1] if good else prev))
            except ProtocolError as exc:
                first_error = f"{exc.code}: {exc.detail}"
                break
        out[author] = (good, first_error)
    return out
