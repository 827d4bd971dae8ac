"""SQLite file: connections, pragmas and versioned migrations (through sqlite-utils).

Entries are the truth; every other table is a projection or a cache that `reindex`
rebuilds from them.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import sqlite_utils

from protocol import ProtocolError, decode, decode_header

HEX = frozenset("0123456789abcdef")


def dist_km(lat1: float | None, lng1: float | None, lat2: float, lng2: float) -> float | None:
    if lat1 is None or lng1 is None:
        return None
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0088 * math.asin(min(1.0, math.sqrt(a)))


def connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    uri = f"file:{path}{'?mode=ro' if readonly else ''}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                           timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        conn.execute("PRAGMA journal_mode = WAL")
    # FULL: an acknowledged write survives power loss, not just a process crash.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted and overwritten content is zeroed on disk: erased text must not linger in
    # free pages (issue: erasure erases everything).
    conn.execute("PRAGMA secure_delete = ON")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: random-key indexes stay in memory
    conn.execute("PRAGMA wal_autocheckpoint = 8192")  # fewer, larger checkpoints in bulk sync
    conn.create_function("dist_km", 4, dist_km, deterministic=True)
    return conn


def _m1_core(db: sqlite_utils.Database) -> None:
    db.execute("""
        CREATE TABLE entries (
            rowid INTEGER PRIMARY KEY,
            author BLOB NOT NULL,
            seq INTEGER NOT NULL,
            id BLOB NOT NULL UNIQUE,
            kind TEXT NOT NULL,
            ts INTEGER NOT NULL,
            raw BLOB NOT NULL,
            payload BLOB,
            received INTEGER NOT NULL,
            UNIQUE (author, seq)
        )""")
    db.execute("CREATE TABLE heads (author BLOB PRIMARY KEY, seq INTEGER NOT NULL, "
               "id BLOB NOT NULL)")
    db.execute("""
        CREATE TABLE tokens (
            id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
            hash BLOB NOT NULL, created INTEGER NOT NULL, revoked INTEGER
        )""")
    db.execute("""
        CREATE TABLE listings (
            rowid INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            author TEXT NOT NULL,
            kind TEXT NOT NULL,
            seq INTEGER NOT NULL,
            local INTEGER NOT NULL,
            title TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '',
            category TEXT NOT NULL,
            area TEXT,
            lat REAL,
            lng REAL,
            available_until INTEGER,
            withdrawn INTEGER NOT NULL DEFAULT 0,
            created INTEGER NOT NULL,
            updated INTEGER NOT NULL,
            fields TEXT NOT NULL
        )""")
    db.execute("CREATE INDEX listings_updated ON listings (updated DESC, id DESC)")
    db.execute("CREATE INDEX listings_author ON listings (author)")
    # External-content FTS5 kept in step by triggers. Written out rather than sqlite-utils'
    # enable_fts, whose executescript would commit the migration's transaction midway.
    db.execute("CREATE VIRTUAL TABLE listings_fts USING fts5(title, description, tags, "
               "content='listings', content_rowid='rowid', "
               "tokenize='unicode61 remove_diacritics 2')")
    cols, new, old = "title, description, tags", "new.title, new.description, new.tags", \
        "old.title, old.description, old.tags"
    db.execute(f"CREATE TRIGGER listings_ai AFTER INSERT ON listings BEGIN INSERT INTO "
               f"listings_fts (rowid, {cols}) VALUES (new.rowid, {new}); END")
    db.execute(f"CREATE TRIGGER listings_ad AFTER DELETE ON listings BEGIN INSERT INTO "
               f"listings_fts (listings_fts, rowid, {cols}) VALUES ('delete', old.rowid, "
               f"{old}); END")
    db.execute(f"CREATE TRIGGER listings_au AFTER UPDATE ON listings BEGIN INSERT INTO "
               f"listings_fts (listings_fts, rowid, {cols}) VALUES ('delete', old.rowid, "
               f"{old}); INSERT INTO listings_fts (rowid, {cols}) VALUES (new.rowid, {new}); END")
    db.execute("CREATE TABLE forks (author BLOB PRIMARY KEY, seq INTEGER NOT NULL, "
               "proof BLOB NOT NULL, found INTEGER NOT NULL)")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")


def _m2_federation(db: sqlite_utils.Database) -> None:
    # Trust graph folded from trust/untrust entries of every stored log.
    db.execute("CREATE TABLE trust_edges (author BLOB NOT NULL, peer BLOB NOT NULL, "
               "url TEXT NOT NULL, active INTEGER NOT NULL, seq INTEGER NOT NULL, "
               "PRIMARY KEY (author, peer))")
    # Operational sync progress per peer; not derived from the log, never replicated.
    db.execute("""
        CREATE TABLE peer_state (
            peer BLOB PRIMARY KEY,
            last_success INTEGER, last_error TEXT, last_error_at INTEGER,
            bytes_in INTEGER NOT NULL DEFAULT 0, bytes_out INTEGER NOT NULL DEFAULT 0,
            entries_in INTEGER NOT NULL DEFAULT 0, behind INTEGER,
            digest BLOB
        )""")


def _m3_exchange(db: sqlite_utils.Database) -> None:
    # Listing fields the exchange fold and matching need as columns.
    for column in ("quantity TEXT", "committed TEXT NOT NULL DEFAULT '0'",
                   "fulfilled TEXT NOT NULL DEFAULT '0'", "available REAL NOT NULL DEFAULT 1",
                   "available_from INTEGER", "urgency TEXT", "radius_km INTEGER",
                   "hidden INTEGER NOT NULL DEFAULT 0"):
        db.execute(f"ALTER TABLE listings ADD COLUMN {column}")
    # Matching looks up the other kind by category: never scan the same kind's rows.
    db.execute("CREATE INDEX listings_kind_category ON listings (kind, category, lat)")
    db.execute("""
        CREATE TABLE claims (
            id TEXT PRIMARY KEY, claimant TEXT NOT NULL, target TEXT NOT NULL,
            owner TEXT NOT NULL, quantity TEXT, message TEXT, sealed BLOB,
            created INTEGER NOT NULL
        )""")
    db.execute("CREATE INDEX claims_owner ON claims (owner)")
    db.execute("CREATE INDEX claims_claimant ON claims (claimant)")
    db.execute("CREATE INDEX claims_target ON claims (target)")
    # accept / decline / fulfil entries, whichever order they arrive in.
    db.execute("""
        CREATE TABLE responses (
            id TEXT PRIMARY KEY, kind TEXT NOT NULL, author TEXT NOT NULL,
            target TEXT NOT NULL, claim TEXT NOT NULL, claimant TEXT NOT NULL,
            committed TEXT, sealed BLOB, seq INTEGER NOT NULL, ts INTEGER NOT NULL
        )""")
    db.execute("CREATE INDEX responses_claim ON responses (claim)")
    db.execute("CREATE INDEX responses_target ON responses (target)")
    db.execute("""
        CREATE TABLE matches (
            need TEXT NOT NULL, offer TEXT NOT NULL, distance_km REAL,
            created INTEGER NOT NULL, PRIMARY KEY (need, offer)
        )""")
    db.execute("CREATE INDEX matches_offer ON matches (offer)")
    db.execute("CREATE TABLE blocks (author TEXT PRIMARY KEY, reason TEXT NOT NULL, "
               "created INTEGER NOT NULL)")
    # Local moderation of remote entries: not derived from any log, kept across reindex.
    db.execute("CREATE TABLE moderation (id TEXT PRIMARY KEY, action TEXT NOT NULL, "
               "reason TEXT NOT NULL, created INTEGER NOT NULL)")
    # Everything a client may want to hear about, for SSE replay and webhooks.
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL, "
               "data TEXT NOT NULL, created INTEGER NOT NULL)")
    db.execute("CREATE TABLE webhooks (id TEXT PRIMARY KEY, url TEXT NOT NULL, "
               "secret TEXT NOT NULL, created INTEGER NOT NULL, delivered INTEGER NOT NULL "
               "DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, last_error TEXT)")


def _m4_webhooks(db: sqlite_utils.Database) -> None:
    # Which event types a webhook wants (comma-separated; NULL: all) and delivery health.
    for column in ("types TEXT", "last_error_at INTEGER", "last_success INTEGER"):
        db.execute(f"ALTER TABLE webhooks ADD COLUMN {column}")


def _m5_advertised(db: sqlite_utils.Database) -> None:
    # The peer's last state message: how far behind we are is computed from it against our
    # current heads, so it is never 0 while entries are missing.
    db.execute("ALTER TABLE peer_state ADD COLUMN advertised BLOB")


def _m6_payloads(db: sqlite_utils.Database) -> None:
    # Entries whose header is authentic but whose payload a peer did not send and no
    # redact explains (spec §13.4): fetched again from any peer that has it.
    db.execute("CREATE TABLE payload_missing (id BLOB PRIMARY KEY, author BLOB NOT NULL, "
               "seq INTEGER NOT NULL, since INTEGER NOT NULL)")
    db.execute("CREATE INDEX payload_missing_author ON payload_missing (author, seq)")
    # Payloads this node erased itself (redact fold, moderation, retention): never fetched
    # again, never taken from a peer.
    db.execute("CREATE TABLE erased (id BLOB PRIMARY KEY, at INTEGER NOT NULL)")
    db.execute("ALTER TABLE peer_state ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0")
    # Repair: older versions stored a peer's nil payload as if the author had redacted it.
    conn = db.conn
    redacted = redactions(conn)
    erased = {bytes.fromhex(r[0]) for r in conn.execute(
        "SELECT id FROM moderation WHERE action = 'erase'") if _is_hex64(r[0])}
    since = int(time.time() * 1000)
    rows = conn.execute("SELECT id, author, seq, raw FROM entries WHERE payload IS NULL")
    conn.executemany(
        "INSERT OR IGNORE INTO payload_missing (id, author, seq, since) VALUES (?, ?, ?, ?)",
        [(r[0], r[1], r[2], since) for r in rows.fetchall()
         if (r[1], r[0]) not in redacted and r[0] not in erased and _has_payload(r[3])])


def _is_hex64(text: object) -> bool:
    return isinstance(text, str) and len(text) == 64 and all(c in HEX for c in text)


def _has_payload(raw: bytes) -> bool:
    """Whether a header promises a payload at all (psize 0 can never carry a valid one)."""
    try:
        return decode_header(raw).header.payload_size > 0
    except ProtocolError:
        return False


def redactions(conn: sqlite3.Connection, author: bytes | None = None
               ) -> set[tuple[bytes, bytes]]:
    """(author, target id) of every stored redact entry, of one author or of all."""
    sql = "SELECT author, payload FROM entries WHERE kind = 'redact' AND payload IS NOT NULL"
    rows = conn.execute(sql + " AND author = ?", (author,)) if author is not None else \
        conn.execute(sql)
    out = set()
    for r in rows:
        target = redact_target(r[1])
        if target is not None:
            out.add((r[0], target))
    return out


def redact_target(payload: bytes | None) -> bytes | None:
    """The entry id a redact payload names (None if absent or not a redact payload)."""
    if payload is None:
        return None
    try:
        content = decode(payload)
    except ProtocolError:
        return None
    target = content.get("target") if isinstance(content, dict) else None
    return target if isinstance(target, bytes) and len(target) == 32 else None


def _m7_nonces(db: sqlite_utils.Database) -> None:
    # Nonces of accepted federation requests (store/nonces.py): replay protection that
    # survives a restart.
    db.execute("CREATE TABLE federation_nonces (caller BLOB NOT NULL, nonce TEXT NOT NULL, "
               "expires INTEGER NOT NULL, PRIMARY KEY (caller, nonce)) WITHOUT ROWID")
    db.execute("CREATE INDEX federation_nonces_expires ON federation_nonces (expires)")


def _m8_people(db: sqlite_utils.Database) -> None:
    # People who sign in to the web app (services/people.py). Local only, never replicated.
    # name_key (NFKC + casefold) keeps names unique beyond SQLite's ASCII-only NOCASE.
    # IF NOT EXISTS: a schema taken back to an older version by hand may still hold them.
    new = "CREATE TABLE IF NOT EXISTS"
    db.execute(f"{new} people (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, "
               "name_key TEXT NOT NULL UNIQUE, role TEXT NOT NULL, hash TEXT NOT NULL, "
               "language TEXT, created INTEGER NOT NULL, revoked INTEGER)")
    # One-time invite links: only the SHA-256 of the token is kept. first = the setup link.
    db.execute(f"{new} invites (hash BLOB PRIMARY KEY, role TEXT NOT NULL, "
               "first INTEGER NOT NULL DEFAULT 0, created_by TEXT REFERENCES people (id), "
               "created INTEGER NOT NULL, expires INTEGER NOT NULL, used INTEGER)")
    db.execute(f"{new} sessions (id TEXT PRIMARY KEY, hash BLOB NOT NULL UNIQUE, "
               "person_id TEXT NOT NULL REFERENCES people (id), csrf TEXT NOT NULL, "
               "created INTEGER NOT NULL, last_seen INTEGER NOT NULL, "
               "user_agent TEXT NOT NULL DEFAULT '')")
    db.execute("CREATE INDEX IF NOT EXISTS sessions_person ON sessions (person_id)")
    # The local audit trail: which person made each entry of this node's own log.
    db.execute(f"{new} entry_people (entry_id BLOB PRIMARY KEY, person_id TEXT NOT NULL "
               "REFERENCES people (id)) WITHOUT ROWID")
    db.execute("CREATE INDEX IF NOT EXISTS entry_people_person ON entry_people (person_id)")
    # The group's named areas: a coarse H3 cell each, nothing finer.
    db.execute(f"{new} areas (name TEXT PRIMARY KEY COLLATE NOCASE, cell TEXT NOT NULL, "
               "created INTEGER NOT NULL)")

def _m9_profile_index(db: sqlite_utils.Database) -> None:
    # Group names come from each author's latest profile (services/overview.py): without
    # this the lookup scans every entry on each page that names other groups.
    db.execute("CREATE INDEX IF NOT EXISTS entries_profiles ON entries (author, seq) "
               "WHERE kind = 'profile'")


def _m10_projector(db: sqlite_utils.Database) -> None:
    # Log first, fold after: the projector's cursor (the last entries.rowid folded into
    # listings, matches and events), moved in the same transaction as each fold. What
    # was stored before this migration was folded on arrival.
    db.execute("CREATE TABLE IF NOT EXISTS projector (id INTEGER PRIMARY KEY CHECK (id = 0), "
               "cursor INTEGER NOT NULL, at INTEGER NOT NULL)")
    db.execute("INSERT OR IGNORE INTO projector (id, cursor, at) SELECT 0, "
               "coalesce(max(rowid), 0), ? FROM entries", [int(time.time() * 1000)])


def _m11_peer_invites(db: sqlite_utils.Database) -> None:
    # Peering invite codes this node made (services/peer_invites.py): only values derived
    # from each code's secret (id, HMAC key), and who used it. Local only, never replicated.
    db.execute("CREATE TABLE IF NOT EXISTS peer_invites (id BLOB PRIMARY KEY, key BLOB NOT "
               "NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL, used INTEGER, "
               "used_by BLOB, used_url TEXT) WITHOUT ROWID")


def _m12_import_rows(db: sqlite_utils.Database) -> None:
    # Spreadsheet rows already imported (services/csv_import.py): row key -> the entry it
    # posted, so a re-import updates or skips instead of posting twice. Local only.
    db.execute("CREATE TABLE IF NOT EXISTS import_rows (key TEXT PRIMARY KEY, kind TEXT NOT "
               "NULL, entry_id TEXT NOT NULL, imported INTEGER NOT NULL)")


MIGRATIONS: list[Callable[[sqlite_utils.Database], None]] = [
    _m1_core, _m2_federation, _m3_exchange, _m4_webhooks, _m5_advertised, _m6_payloads,
    _m7_nonces, _m8_people, _m9_profile_index, _m10_projector, _m11_peer_invites,
    _m12_import_rows,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply pending migrations, each in its own transaction; returns the schema version."""
    db = sqlite_utils.Database(conn)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, step in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            step(db)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version


def events_head(conn: sqlite3.Connection) -> int:
    """The id of the newest event ever committed (ids are never reused)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
    return row[0] if row else 0
