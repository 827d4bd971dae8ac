"""Matching: which needs and offers fit each other, and the best K of them per listing.

A need and an offer *fit* when their authors differ, the offer's category is the need's
or below it, their units convert (or either has no quantity), their windows overlap and
the offer lies within the need's radius (`fits`; the SQL below applies the same rule).
Only live listings match: not withdrawn, hidden or blocked, not expired at ``now``,
something still available (what the API shows).

Why a bound (issue 14): N needs and N offers that all fit made N² rows and N² events.
Each listing ranks its counterparts (`rank`): distance (NULL last), the need's urgency,
freshness by day, then a fixed tiebreak on the ring of ids (a need prefers the offers
just after it, an offer the needs just before it, so the two sides agree and equals
are spread, not all given to the same few). Its first K are its *picks* (config
`max_matches_per_listing`, default MAX_MATCHES; 0 keeps every fitting pair). A pair is
stored while it is a pick of either side: at most K rows per listing on average (a
listing many others pick is in more), and every listing sees at least its own picks.
One `match` event per listing matched carries its new pairs, best first (the first
EVENT_PAIRS; `count` says how many).

Cost of a new or changed listing: one SQL pass over its fitting candidates (sorted
with LIMIT: no Python, no write per candidate), then work on at most (1 + ROOM) * K of
them: its picks, the REACH*K nearest (are they better off with it?), those of the
ROOM*K nearest that have room. Writes and events per listing do not grow with N.

Guaranteed, as of the last time each listing was matched (inserted, changed, or
refilled when a change left it with fewer than K live pairs):
- a listing that is matched stores its exact best K;
- a newcomer is added to an existing listing that has fewer than K pairs, or whose
  K-th pick it beats, if that listing is among the nearest ROOM*K (REACH*K) to it; the
  pick it pushes out is deleted unless its other side picks it;
- so if no listing has more than REACH*K fitting counterparts (every pair when none
  has more than K), insertions give exactly the union of all best K whatever the
  arrival order. Beyond that a listing can miss a better newcomer until it is matched
  again, and the rows depend on arrival order; `projection.rebuild` folds in stored
  order, so a reindex gives the same rows (expiry aside: it depends on ``now``);
- a listing that stops being live with no entry about it (expiry, hide, block, fully
  committed) keeps its pairs until it or they are matched again; the API hides them.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from typing import Any

from .events import emit
from .fit import DEFAULT_RADIUS_KM, NO_END, box, prefixes, unit_clause
from .visibility import listing_visible

MAX_MATCHES = 20  # the default of config max_matches_per_listing
LIMIT_KEY = "max_matches_per_listing"
REACH = 2  # a newcomer offers itself to the REACH * K counterparts nearest to it
ROOM = 10  # and to those of its nearest ROOM * K stored in fewer than K pairs
EVENT_PAIRS = 20  # pairs listed in one match event (its `count` says how many in all)
DAY_MS = 86_400_000
URGENCY = {"critical": 4, "high": 3, "normal": 2, "low": 1}
_DESCENDING = str.maketrans("0123456789abcdef", "fedcba9876543210")  # hex ids, reversed

Key = tuple[bool, float, int, int, bool, str]
Pair = tuple[Key, str, "float | None"]  # (rank from the listing's side, counterpart, km)


def rank(viewer: str, kind: str, cid: str, distance: float | None, urgency: str | None,
         updated: int) -> Key:
    """How listing ``viewer`` ranks counterpart ``cid`` (a ``kind``); smaller is better.

    Among equals a need prefers the offers whose ids follow its own on the ring, an offer
    the needs whose ids precede its own, so the two sides agree: a need's favourites are
    the offers that count it among theirs.
    """
    urgent = -URGENCY.get(urgency or "normal", 2) if kind == "need" else 0
    ring = (cid > viewer, cid.translate(_DESCENDING)) if kind == "need" else \
        (cid < viewer, cid)
    return (distance is None, distance or 0.0, urgent, -(updated // DAY_MS), *ring)


def _rank(viewer: str, kind: str, row: sqlite3.Row) -> Key:
    """`rank` of a row with columns id, d, urgency, updated."""
    return rank(viewer, kind, row["id"], row["d"], row["urgency"], row["updated"])


def _order(kind: str, me: str = ":me", near: bool = False) -> str:
    """`rank` as an ORDER BY over columns id, d, urgency, updated, seen from ``me`` (a
    listing ranking ``kind``s); ``near``: distance and ring only."""
    urgent = ""
    if kind == "need" and not near:
        whens = " ".join(f"WHEN '{u}' THEN {r}" for u, r in URGENCY.items())
        urgent = f"CASE coalesce(urgency, 'normal') {whens} ELSE 2 END DESC, "
    ring = f"id < {me}, id" if kind == "offer" else f"id > {me}, id DESC"
    fresh = "" if near else f"updated / {DAY_MS} DESC, "
    return f"d IS NULL, d, {urgent}{fresh}{ring}"


def _live(alias: str) -> str:
    return (f"{alias}.withdrawn = 0 AND {alias}.available > 0 AND ({alias}.available_until "
            f"IS NULL OR {alias}.available_until >= :now) AND {listing_visible(alias)}")


def _other(kind: str) -> str:
    return "offer" if kind == "need" else "need"


def _candidates(conn: sqlite3.Connection, me: sqlite3.Row, now: int, limit: int,
                k: int = 0) -> tuple[list[sqlite3.Row], list[sqlite3.Row]]:
    """Live counterparts that fit ``me``: its best ``limit`` (-1: all) best first; when
    ``k``, also the ROOM*k that would rank ``me`` best (nearest, then on the ring: their
    urgency and freshness do not change how they see ``me``), those stored in fewer than
    k pairs marked ``room``.

    Candidates come from the category index: a need for `food` meets `food/...` offers,
    an offer of `food/bread` meets needs for `food` or `food/bread`; a bounding box
    around the need's radius narrows them, dist_km decides.
    """
    kind, other = me["kind"], _other(me["kind"])
    p: dict[str, Any] = {
        "me": me["id"], "author": me["author"], "start": me["available_from"] or 0,
        "end": me["available_until"] or NO_END, "lat": me["lat"], "lng": me["lng"],
        "now": now, "limit": limit, "wide": ROOM * k, "kth": k - 1}
    where = [f"c.kind = '{other}'", "c.author != :author", _live("c"),
             "coalesce(c.available_from, 0) <= :end",
             f"coalesce(c.available_until, {NO_END}) >= :start"]
    units, unit_params = unit_clause(me)  # only units that convert (spec §9.7)
    if units:
        where.append(units)
        p.update(unit_params)
    if kind == "need":
        # every path below `cat/` sorts between 'cat/' and 'cat0' ('0' follows '/')
        where.append("(c.category = :cat OR (c.category > :lo AND c.category < :hi))")
        p.update(cat=me["category"], lo=me["category"] + "/", hi=me["category"] + "0")
        p["radius"] = me["radius_km"] if me["radius_km"] is not None else DEFAULT_RADIUS_KM
        radius, reach = ":radius", p["radius"]
    else:
        names = []
        for i, prefix in enumerate(prefixes(me["category"])):
            p[f"p{i}"] = prefix
            names.append(f":p{i}")
        where.append(f"c.category IN ({', '.join(names)})")
        radius = f"coalesce(c.radius_km, {DEFAULT_RADIUS_KM})"
        reach = conn.execute(f"SELECT max({radius}) FROM listings c WHERE kind = 'need' AND "
                             f"category IN ({', '.join(names)})", p).fetchone()[0]
        if reach is None:
            return [], []  # no need in these categories at all
    distance = "NULL"
    if me["lat"] is not None:
        p.update(box(me["lat"], me["lng"], reach))
        inside = "c.lat BETWEEN :lat0 AND :lat1"
        if "lng0" in p:
            inside += " AND c.lng BETWEEN :lng0 AND :lng1"
        where.append(f"(c.lat IS NULL OR ({inside}))")
        pair = ":lat, :lng, c.lat, c.lng" if kind == "need" else "c.lat, c.lng, :lat, :lng"
        # the same cell is 0.0 km, as dist_km says, without a call into Python
        distance = (f"CASE WHEN c.lat IS NULL THEN NULL WHEN c.lat = :lat AND c.lng = :lng "
                    f"THEN 0.0 ELSE dist_km({pair}) END")
    sql = (f"WITH cand AS (SELECT c.id, c.urgency, c.updated, {distance} AS d, {radius} AS r "
           f"FROM listings c WHERE {' AND '.join(where)}), "
           "fit AS (SELECT id, d, urgency, updated FROM cand WHERE d IS NULL OR d <= r) "
           f"SELECT * FROM (SELECT *, 0 AS part, 0 AS room FROM fit ORDER BY {_order(other)} "
           "LIMIT :limit)")
    if k:
        sql += (f" UNION ALL SELECT *, (SELECT 1 FROM matches m WHERE m.{other} = near.id "
                f"LIMIT 1 OFFSET :kth) IS NULL FROM (SELECT *, 1 FROM fit ORDER BY "
                f"{_order(other, near=True)} LIMIT :wide) near")
    parts: tuple[list[sqlite3.Row], list[sqlite3.Row]] = ([], [])
    for r in conn.execute(sql, p):
        parts[r["part"]].append(r)
    return parts


def _lists(conn: sqlite3.Connection, ids: Iterable[str], kind: str, now: int, k: int, *,
           skip: str = "", last: bool = False) -> dict[str, list[sqlite3.Row]]:
    """The picks of listings ``ids`` (all of ``kind``): their best k stored pairs with
    live counterparts other than ``skip``, best first (rows: id, d, urgency, updated, n
    the place). ``last``: only the last pick of each (n = how many it has)."""
    other = _other(kind)
    out: dict[str, list[sqlite3.Row]] = {i: [] for i in ids}
    keys = list(out)
    select = "SELECT * FROM r WHERE n <= :k"
    if last:
        # SQLite: the bare columns of max() come from the row holding the maximum
        select = "SELECT owner, max(n) AS n, id, d, urgency, updated FROM r WHERE n <= :k " \
                 "GROUP BY owner"
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        params = {"now": now, "skip": skip, "k": k, **{f"i{j}": v for j, v in enumerate(chunk)}}
        for r in conn.execute(
                f"WITH s AS (SELECT m.{kind} AS owner, y.id, m.distance_km AS d, y.urgency, "
                f"y.updated FROM matches m JOIN listings y ON y.id = m.{other} WHERE m.{kind} "
                f"IN ({', '.join(f':i{j}' for j in range(len(chunk)))}) AND y.id != :skip "
                f"AND {_live('y')}), r AS (SELECT *, row_number() OVER (PARTITION BY owner "
                f"ORDER BY {_order(other, 'owner')}) AS n FROM s) {select} ORDER BY owner, n",
                params):
            out[r["owner"]].append(r)
    return out


def _better(conn: sqlite3.Connection, kind: str, asks: list[tuple[str, str, Any, Any, int]],
            now: int, k: int) -> dict[tuple[str, str], bool]:
    """For each (listing v of ``kind``, counterpart x, their distance, x's urgency, x's
    updated): whether fewer than k of v's other live pairs rank before x from v's side,
    i.e. x is (or would be) one of v's picks. No sort, it stops at the k-th."""
    other = _other(kind)
    urgent = "0"
    if other == "need":
        whens = " ".join(f"WHEN '{u}' THEN {r}" for u, r in URGENCY.items())
        urgent = f"-(CASE coalesce(y.urgency, 'normal') {whens} ELSE 2 END)"
    op = "<" if other == "offer" else ">"  # the ring: see `rank`
    head = (f"(m.distance_km IS NULL, coalesce(m.distance_km, 0), {urgent}, "
            f"-(y.updated / {DAY_MS}), y.id {op} t.v)")
    before = f"({head} < (t.a, t.b, t.u, t.d, t.r) OR ({head} = (t.a, t.b, t.u, t.d, t.r) " \
             f"AND y.id {op} t.x))"
    out: dict[tuple[str, str], bool] = {}
    for i in range(0, len(asks), 200):
        chunk = asks[i:i + 200]
        params: dict[str, Any] = {"now": now, "kth": k - 1}
        values = []
        for j, (v, x, d, urgency, updated) in enumerate(chunk):
            a, b, u, day, ring, _ = rank(v, other, x, d, urgency, updated)
            params.update({f"v{j}": v, f"x{j}": x, f"a{j}": a, f"b{j}": b, f"u{j}": u,
                           f"d{j}": day, f"r{j}": ring})
            values.append(f"(:v{j}, :x{j}, :a{j}, :b{j}, :u{j}, :d{j}, :r{j})")
        for r in conn.execute(
                f"WITH t(v, x, a, b, u, d, r) AS (VALUES {', '.join(values)}) SELECT v, x, "
                f"(SELECT 1 FROM matches m JOIN listings y ON y.id = m.{other} WHERE m.{kind} "
                f"= t.v AND y.id != t.x AND {_live('y')} AND {before} LIMIT 1 OFFSET :kth) "
                "IS NULL FROM t", params):
            out[(r[0], r[1])] = bool(r[2])
    return out


def _stored(conn: sqlite3.Connection, listing_id: str) -> dict[str, tuple[int, Any]]:
    """Counterparts paired with a listing -> (when the pair was made, its distance)."""
    return {r[0]: (r[1], r[2]) for r in conn.execute(
        "SELECT offer, created, distance_km FROM matches WHERE need = ? UNION ALL "
        "SELECT need, created, distance_km FROM matches WHERE offer = ?",
        (listing_id, listing_id))}


def _is_live(conn: sqlite3.Connection, listing_id: str, now: int) -> bool:
    return conn.execute(f"SELECT 1 FROM listings l WHERE l.id = :id AND {_live('l')}",
                        {"id": listing_id, "now": now}).fetchone() is not None


def _pair(kind: str, me: str, other: str) -> tuple[str, str]:
    """(need, offer) of a pair seen from listing ``me`` of ``kind``."""
    return (me, other) if kind == "need" else (other, me)


def _put(conn: sqlite3.Connection, kind: str, me: str, pairs: Iterable[Pair],
         made: dict[str, tuple[int, Any]], now: int) -> None:
    conn.executemany(
        "INSERT INTO matches (need, offer, distance_km, created) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (need, offer) DO UPDATE SET distance_km = excluded.distance_km",
        [(*_pair(kind, me, c), d, made.get(c, (now,))[0]) for _, c, d in pairs])


def _drop(conn: sqlite3.Connection, kind: str, gone: list[tuple[sqlite3.Row, str, Any]],
          now: int, k: int) -> None:
    """Pairs (live listing of ``kind`` as a row with id, urgency, updated; counterpart;
    distance) that are no pick of that listing: delete each unless the listing is a
    pick of the counterpart."""
    picked = _better(conn, _other(kind), [(c, me["id"], d, me["urgency"], me["updated"])
                                          for me, c, d in gone], now, k)
    conn.executemany("DELETE FROM matches WHERE need = ? AND offer = ?",
                     [_pair(kind, me["id"], c) for me, c, _ in gone
                      if not picked[(c, me["id"])]])


def _announce(conn: sqlite3.Connection, kind: str, me: str, new: list[Pair]) -> None:
    """One `match` event: this listing's new pairs, best first from its side."""
    if not new:
        return
    new = sorted(new, key=lambda p: p[0])
    emit(conn, "match", {"listing": me, "kind": kind, "count": len(new), "matches": [
        dict(zip(("need", "offer"), _pair(kind, me, c), strict=True), distance_km=d)
        for _, c, d in new[:EVENT_PAIRS]]})


def _join(conn: sqlite3.Connection, me: sqlite3.Row, now: int, k: int,
          had: dict[str, tuple[int, Any]], made: dict[str, tuple[int, Any]]) -> list[Pair]:
    """Pair a live listing with its best k, the nearest with room, and those of the
    REACH*k nearest whose picks it enters; returns the pairs it now has. ``had``: pairs
    stored already (by listings folded in the same batch); ``made``: when pairs made
    again were first made."""
    kind, other, mine = me["kind"], _other(me["kind"]), me["id"]
    ranked, near = _candidates(conn, me, now, k, k)
    room = [c for c in near if c["room"]]
    pairs = {c["id"]: (_rank(mine, other, c), c["id"], c["d"]) for c in ranked + room}
    roomy = {c["id"] for c in room}
    full = list({c["id"]: c for c in ranked + near[:REACH * k]
                 if c["id"] not in roomy and c["id"] not in had}.values())
    enters = _better(conn, other, [(c["id"], mine, c["d"], me["urgency"], me["updated"])
                                   for c in full], now, k)
    entering = {c["id"]: c for c in full if enters[(c["id"], mine)]}
    pairs.update((c, (_rank(mine, other, r), c, r["d"])) for c, r in entering.items())
    _put(conn, kind, mine, [p for c, p in pairs.items() if c not in had], made, now)
    # each list of k it enters pushes its k-th pick out
    lasts = _lists(conn, entering, other, now, k, skip=mine, last=True)
    _drop(conn, other, [(entering[c], rows[-1]["id"], rows[-1]["d"])
                        for c, rows in lasts.items() if rows and rows[-1]["n"] >= k], now, k)
    # pairs made by listings of the same batch that are no pick of ours
    _drop(conn, kind, [(me, c, had[c][1]) for c in had if c not in pairs], now, k)
    return list(pairs.values())


def _refill(conn: sqlite3.Connection, listing_id: str, now: int, k: int) -> None:
    """A listing left with fewer than k live pairs takes its best k again."""
    me = conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()
    if me is None or not _is_live(conn, listing_id, now):
        return
    have = _lists(conn, [listing_id], me["kind"], now, k)[listing_id]
    if len(have) >= k:
        return
    ranked = _candidates(conn, me, now, k)[0]
    top, stored = {c["id"] for c in ranked}, {y["id"] for y in have}
    new = [(_rank(listing_id, _other(me["kind"]), c), c["id"], c["d"]) for c in ranked
           if c["id"] not in stored]
    _put(conn, me["kind"], listing_id, new, {}, now)
    _drop(conn, me["kind"], [(me, y["id"], y["d"]) for y in have if y["id"] not in top], now, k)
    _announce(conn, me["kind"], listing_id, new)


def _match_all(conn: sqlite3.Connection, me: sqlite3.Row | None, listing_id: str,
               had: dict[str, tuple[int, Any]], now: int) -> None:
    """Without a bound (k = 0): every fitting pair, one event per listing matched."""
    if me is None:
        conn.execute("DELETE FROM matches WHERE need = ? OR offer = ?", (listing_id, listing_id))
        return
    kind, other = me["kind"], _other(me["kind"])
    pairs = [(_rank(listing_id, other, c), c["id"], c["d"])
             for c in _candidates(conn, me, now, -1)[0]]
    keep = {c for _, c, _ in pairs}
    conn.executemany("DELETE FROM matches WHERE need = ? AND offer = ?",
                     [_pair(kind, listing_id, gone) for gone in had.keys() - keep])
    _put(conn, kind, listing_id, pairs, had, now)
    _announce(conn, kind, listing_id, [p for p in pairs if p[1] not in had])


def may_fit(conn: sqlite3.Connection, kind: str, category: str,
            seen: dict[tuple[str, str], bool]) -> bool:
    """Whether any stored listing of the other kind has a category that fits a ``kind``
    in ``category`` (live or not: a superset of the candidates). ``seen`` caches the
    answer per kind and category for one batch."""
    key = (kind, category)
    if key not in seen:
        if kind == "need":
            sql = ("SELECT 1 FROM listings WHERE kind = 'offer' AND (category = :cat OR "
                   "(category > :lo AND category < :hi)) LIMIT 1")
            params: dict[str, Any] = {"cat": category, "lo": category + "/",
                                      "hi": category + "0"}
        else:
            names = prefixes(category)
            params = {f"p{i}": p for i, p in enumerate(names)}
            sql = (f"SELECT 1 FROM listings WHERE kind = 'need' AND category IN "
                   f"({', '.join(':' + k for k in params)}) LIMIT 1")
        seen[key] = conn.execute(sql, params).fetchone() is not None
    return seen[key]


def limit(conn: sqlite3.Connection) -> int:
    """K for this data dir: config's max_matches_per_listing, kept in `meta` by
    services.ledger.open_ledger so every process folds with the same K."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (LIMIT_KEY,)).fetchone()
    return int(row[0]) if row else MAX_MATCHES


def rematch(conn: sqlite3.Connection, listing_id: str, now: int, *, fresh: bool = False,
            k: int | None = None) -> None:
    """Bring the matches of one new, changed or removed listing up to date (incremental).

    ``fresh``: the listing was just inserted (listings inserted with it in the same batch
    may have paired with it already). ``now`` (ms) decides expiry; 0, which the fold
    passes for a withdrawal, means the clock. ``k``: picks per listing, 0 for no bound.
    """
    now = now if now > 0 else int(time.time() * 1000)
    k = limit(conn) if k is None else k
    row = conn.execute("SELECT * FROM listings WHERE id = ?", (listing_id,)).fetchone()
    me = row if row is not None and _is_live(conn, listing_id, now) else None
    had = _stored(conn, listing_id)
    if k <= 0:
        _match_all(conn, me, listing_id, had, now)
        return
    if fresh and me is not None:
        pairs = _join(conn, me, now, k, had, had)
        _announce(conn, me["kind"], listing_id, [p for p in pairs if p[1] not in had])
        return
    # Changed or gone: start again from no pairs; refill whoever is left short.
    conn.execute("DELETE FROM matches WHERE need = ? OR offer = ?", (listing_id, listing_id))
    pairs = _join(conn, me, now, k, {}, had) if me is not None else []
    if me is not None:
        _announce(conn, me["kind"], listing_id, [p for p in pairs if p[1] not in had])
    for counterpart in sorted(had.keys() - {c for _, c, _ in pairs}):
        _refill(conn, counterpart, now, k)
