"""People, invites, sign-in, sessions and the audit trail (node/services/people.py), on
real data dirs; the CLI through the real `aidmesh` entry point in a subprocess."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from conftest import NEED, OFFER, NodeHome, make_log

from node.config import Config
from node.services import listings
from node.services import people as pp
from node.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    TooMany,
    Unauthorized,
)
from node.store.db import connect
from node.store.ledger import Ledger, now_ms
from protocol import Identity

ROOT = Path(__file__).resolve().parent.parent
AIDMESH = str(Path(sys.executable).parent / "aidmesh")
DAY = 86_400_000
PASSWORD = "correct horse battery"
TABLES = ("people", "invites", "sessions", "entry_people")


class Site:
    """A data dir with a synchronous ledger: write() runs one transaction, read() runs on
    a read-only connection (so a function that tried to write would fail)."""

    def __init__(self, home: NodeHome) -> None:
        self.home = home
        self.ledger: Ledger = home.ledger()

    def write(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        return self.ledger.transaction(fn)

    def read(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        conn = connect(self.home.config.db_path, readonly=True)
        try:
            return fn(conn)
        finally:
            conn.close()

    def state(self) -> dict[str, list[tuple]]:
        return {t: self.home.query(f"SELECT * FROM {t} ORDER BY 1") for t in TABLES}

    def invite(self, role: str = "coordinator", by: pp.Person | None = None,
               now: int | None = None) -> str:
        return self.write(lambda c: pp.create_invite(c, role, by, now or now_ms()))

    def join(self, name: str, role: str = "coordinator", password: str = PASSWORD
             ) -> pp.Person:
        token = self.invite(role)
        return self.write(lambda c: pp.accept_invite(c, token, name, password, now_ms()))

    def refused(self, exc_type: type[ServiceError], code: str, fn: Callable[[], Any],
                field: str | None = None) -> ServiceError:
        """``fn`` raises exactly this refusal and changes nothing."""
        before = self.state()
        with pytest.raises(exc_type) as info:
            fn()
        assert type(info.value) is exc_type
        assert info.value.code == code, info.value.detail
        if field is not None:
            assert info.value.field == field
        assert self.state() == before
        return info.value


@pytest.fixture
def site(node_home: NodeHome):
    s = Site(node_home)
    yield s
    s.ledger.close()


# -- invites ----------------------------------------------------------------------------------


def test_setup_link_only_while_nobody_exists(site):
    now = now_ms()
    first = site.write(lambda c: pp.setup_token(c, now))
    second = site.write(lambda c: pp.setup_token(c, now))
    assert first and second and first != second
    assert len(first) >= 22  # >= 128 bits, URL-safe
    assert all(ch.isalnum() or ch in "-_" for ch in first)
    info = site.read(lambda c: pp.invite(c, first, now))
    assert info == pp.Invite("admin", now + DAY, True)
    admin = site.write(lambda c: pp.accept_invite(c, second, "Ana", PASSWORD, now))
    assert admin.role == "admin" and admin.allows("coordinator")
    # the other setup link is dead now, and no new one is made
    site.refused(NotFound, "invite-unknown", lambda: site.write(
        lambda c: pp.accept_invite(c, first, "Bea", PASSWORD, now)))
    site.refused(NotFound, "invite-unknown", lambda: site.read(lambda c: pp.invite(c, first, now)))
    assert site.write(lambda c: pp.setup_token(c, now)) is None
    assert site.write(lambda c: pp.setup_link(c, site.home.config, now)) is None


def test_first_admin_link_refused_once_anyone_exists(site):
    setup = site.write(lambda c: pp.setup_token(c, now_ms()))
    site.join("Coordinator Carla")  # an invite from the CLI got there first
    err = site.refused(NotFound, "invite-unknown", lambda: site.write(
        lambda c: pp.accept_invite(c, setup, "Mallory", PASSWORD, now_ms())))
    assert "admin" in err.detail and "new one" in err.detail
    assert [p["name"] for p in site.read(pp.list_people)] == ["Coordinator Carla"]


def test_an_invite_works_once_and_not_after_it_expires_or_is_altered(site):
    now = now_ms()
    token = site.invite("reader", now=now)
    assert site.read(lambda c: pp.invite(c, token, now)) == pp.Invite("reader", now + 7 * DAY,
                                                                        False)
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token[:-1], token + "x",
                "", "x" * 5000, None, 42):
        site.refused(NotFound, "invite-unknown", lambda bad=bad: site.write(
            lambda c: pp.accept_invite(c, bad, "Dan", PASSWORD, now)))
    # expired: a moment after its end it is refused, and nothing changes
    site.refused(NotFound, "invite-unknown", lambda: site.write(
        lambda c: pp.accept_invite(c, token, "Dan", PASSWORD, now + 7 * DAY)))
    dan = site.write(lambda c: pp.accept_invite(c, token, "Dan", PASSWORD, now + 1000))
    assert dan.role == "reader" and not dan.allows("coordinator")
    err = site.refused(NotFound, "invite-unknown", lambda: site.write(
        lambda c: pp.accept_invite(c, token, "Eve", PASSWORD, now + 2000)))
    assert "used" in err.detail and "expired" in err.detail and "admin" in err.detail
    site.refused(NotFound, "invite-unknown", lambda: site.read(
        lambda c: pp.invite(c, token, now + 2000)))


def test_only_admins_invite_and_roles_are_checked(site):
    now = now_ms()
    admin, coordinator = site.join("Ana", "admin"), site.join("Carla")
    site.refused(Forbidden, "admin-only", lambda: site.write(
        lambda c: pp.create_invite(c, "reader", coordinator, now)))
    for role in ("owner", "", None, "Admin"):
        site.refused(Invalid, "invalid-field", lambda role=role: site.write(
            lambda c: pp.create_invite(c, role, admin, now)), field="role")
    for days in (0, 31, True, "7"):
        site.refused(Invalid, "invalid-field", lambda days=days: site.write(
            lambda c: pp.create_invite(c, "reader", admin, now, days)), field="ttl_days")
    token = site.invite("admin", by=admin)
    assert site.home.query("SELECT created_by FROM invites WHERE hash = ?",
                           (hashlib.sha256(token.encode()).digest(),)) == [(admin.id,)]
    # an admin page loaded before the demotion cannot invite any more
    second = site.join("Bea", "admin")
    site.write(lambda c: pp.set_role(c, second, admin.id, "coordinator"))
    site.refused(Forbidden, "admin-only", lambda: site.write(
        lambda c: pp.create_invite(c, "reader", admin, now)))


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "Ana\nBea", "Ana\x00", "Ana\u202eaeB",
                                  "tab\there", 7, None])
def test_names_are_checked_and_the_invite_survives(site, name):
    token = site.invite()
    site.refused(Invalid, "invalid-field", lambda: site.write(
        lambda c: pp.accept_invite(c, token, name, PASSWORD, now_ms())), field="name")
    assert site.read(lambda c: pp.invite(c, token, now_ms())).role == "coordinator"


def test_passwords_are_checked_hashed_with_argon2id_and_never_stored(site):
    token = site.invite()
    for bad in ("short pw!", "x" * 201, None, 1234567890):
        err = site.refused(Invalid, "invalid-field", lambda bad=bad: site.write(
            lambda c: pp.accept_invite(c, token, "Ana", bad, now_ms())), field="password")
        assert "10" in err.detail
    ana = site.write(lambda c: pp.accept_invite(c, token, "  Ana  ", "ten chars!", now_ms(),
                                                language="ES"))
    assert (ana.name, ana.language) == ("Ana", "es")
    [(stored,)] = site.home.query("SELECT hash FROM people")
    assert stored.startswith("$argon2id$")
    assert PasswordHasher().verify(stored, "ten chars!")
    site.ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = b"".join(p.read_bytes() for p in site.home.path.glob("aidmesh.db*"))
    assert b"ten chars!" not in raw and token.encode() not in raw
    # the stand-in hash for unknown names costs what a real one costs
    assert not PasswordHasher().check_needs_rehash(pp._DUMMY_HASH)


def test_names_are_unique_ignoring_case(site):
    site.join("Éva Núñez")
    for taken in ("éva núñez", "ÉVA NÚÑEZ", " Éva Núñez "):
        token = site.invite()
        err = site.refused(Conflict, "name-taken", lambda t=token, n=taken: site.write(
            lambda c: pp.accept_invite(c, t, n, PASSWORD, now_ms())), field="name")
        assert "choose another" in err.detail
        assert site.read(lambda c, t=token: pp.invite(c, t, now_ms()))  # still usable


# -- sign-in ----------------------------------------------------------------------------------


def test_wrong_password_and_unknown_name_look_the_same_and_nothing_is_written(site):
    ana = site.join("Ana", "admin")
    limiter = pp.SignInLimiter()
    now = now_ms()
    # sign_in runs on a read-only connection: it cannot write
    assert site.read(lambda c: pp.sign_in(c, limiter, "ana", PASSWORD, "10.0.0.1", now)) == ana
    errors = []
    for name, password in (("Ana", "wrong password"), ("Nobody", PASSWORD), ("", ""),
                           (None, None), ("x" * 10_000, PASSWORD)):
        with pytest.raises(Unauthorized) as info:
            site.read(lambda c, n=name, p=password: pp.sign_in(c, limiter, n, p, "10.0.0.2",
                                                              now))
        errors.append((info.value.code, info.value.detail, info.value.field))
    assert len(set(errors)) == 1
    assert errors[0] == ("wrong-credentials", "The name or password is wrong. Check them and "
                         "try again; an admin can send you a new invite link.", None)


def test_a_removed_person_cannot_sign_in(site):
    site.join("Ana", "admin")
    carla = site.join("Carla")
    limiter = pp.SignInLimiter()
    site.write(lambda c: pp.revoke_person(c, None, carla.id))
    with pytest.raises(Unauthorized):
        site.read(lambda c: pp.sign_in(c, limiter, "Carla", PASSWORD, "10.0.0.1", now_ms()))


def test_five_failures_per_name_then_wait_even_with_the_right_password(site):
    site.join("Ana", "admin")
    limiter = pp.SignInLimiter()
    t0 = now_ms() // 1000 * 1000  # whole seconds: retry_after is exact
    for i in range(5):
        with pytest.raises(Unauthorized):
            site.read(lambda c, i=i: pp.sign_in(c, limiter, "ANA" if i % 2 else "ana",
                                                "wrong password", f"10.0.0.{i}", t0 + i * 1000))
    with pytest.raises(TooMany) as info:  # a sixth try, from yet another address
        site.read(lambda c: pp.sign_in(c, limiter, "Ana", PASSWORD, "10.0.9.9", t0 + 60_000))
    assert info.value.code == "too-many-attempts"
    assert info.value.extra["retry_after"] == 900 - 60  # the first failure leaves the window
    assert "14 minutes" in info.value.detail
    # another name is not held back; after the window the right password works again
    limiter.check("Bea", "10.0.9.9", t0 / 1000 + 60)
    later = t0 + 900_000 + 1
    assert site.read(lambda c: pp.sign_in(c, limiter, "Ana", PASSWORD, "10.0.9.9", later))


def test_a_success_forgets_the_names_failures():
    limiter = pp.SignInLimiter()
    for i in range(4):
        limiter.failed("Bea", f"10.1.0.{i}", 1.0)
    limiter.succeeded("bea", "10.1.0.9")
    limiter.failed("Bea", "10.1.0.5", 2.0)  # would have been the fifth
    limiter.check("Bea", "10.1.0.6", 3.0)
    for i in range(4):
        limiter.failed("Bea", f"10.1.0.{i}", 4.0)
    with pytest.raises(TooMany):
        limiter.check("Bea", "10.1.0.6", 5.0)


def test_twenty_failures_per_address(site):
    limiter = pp.SignInLimiter()
    for i in range(20):
        limiter.check(f"name {i}", "192.0.2.7", 1000.0 + i)
        limiter.failed(f"name {i}", "192.0.2.7", 1000.0 + i)
    with pytest.raises(TooMany) as info:
        limiter.check("a fresh name", "192.0.2.7", 1100.0)
    assert info.value.extra["retry_after"] == 900 - 100
    with pytest.raises(TooMany):  # the same host over IPv4-mapped IPv6
        limiter.check("a fresh name", "::ffff:192.0.2.7", 1100.0)
    limiter.check("a fresh name", "192.0.2.8", 1100.0)
    limiter.succeeded("name 3", "192.0.2.7")  # one good account does not reset the address
    with pytest.raises(TooMany):
        limiter.check("name 3", "192.0.2.7", 1100.0)
    limiter.check("a fresh name", "192.0.2.7", 1900.5)  # the window moved on
    # IPv6 clients count per /64
    for i in range(20):
        limiter.failed(f"v6 {i}", f"2001:db8:1:2::{i + 1:x}", 5000.0)
    with pytest.raises(TooMany):
        limiter.check("v6 new", "2001:db8:1:2:ffff::1", 5000.0)
    limiter.check("v6 new", "2001:db8:1:3::1", 5000.0)


def test_the_limiter_keeps_bounded_memory_and_is_thread_safe():
    limiter = pp.SignInLimiter(max_keys=100)
    for i in range(1000):
        limiter.failed(f"name {i}", f"10.{i // 256}.{i % 256}.1", 10.0)
    assert len(limiter) <= 100
    limiter.failed("late", "10.99.0.1", 10.0 + 901)  # everything older left the window
    assert len(limiter) == 2

    shared = pp.SignInLimiter(per_address=10_000, max_keys=50)
    errors: list[BaseException] = []

    def hammer(n: int) -> None:
        try:
            for i in range(2000):
                shared.failed(f"{n}-{i}", "10.1.1.1", 1.0)
                shared.check(f"{n}-{i}", f"10.2.{n}.{i % 200}", 1.0)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(shared) <= 50


# -- sessions ---------------------------------------------------------------------------------


def test_sessions_open_check_touch_close(site):
    ana = site.join("Ana", "admin")
    now = now_ms()
    token, sess = site.write(lambda c: pp.open_session(c, ana.id, "Firefox\x00\n" + "x" * 500,
                                                       now))
    assert len(token) >= 43 and sess.person == ana and (sess.created, sess.last_seen) == (now,
                                                                                         now)
    [(stored,)] = site.home.query("SELECT hash FROM sessions")
    assert stored == hashlib.sha256(token.encode()).digest()
    assert token.encode() not in b"".join(
        p.read_bytes() for p in site.home.path.glob("aidmesh.db*"))
    token2, sess2 = site.write(lambda c: pp.open_session(c, ana.id, None, now))
    assert sess2.csrf != sess.csrf and sess2.id != sess.id and token2 != token
    assert site.read(lambda c: pp.session(c, token, now + 1)) == sess  # read-only
    for bad in ("", token[:-1], None, "x" * 1000):
        assert site.read(lambda c, b=bad: pp.session(c, b, now)) is None
    # idle for 30 days: ended; kept busy, it still ends 90 days after sign-in
    assert site.read(lambda c: pp.session(c, token, now + 30 * DAY + 1)) is None
    for day in (20, 40, 60, 80, 89):
        site.write(lambda c, d=day: pp.touch_session(c, sess.id, now + d * DAY))
        alive = site.read(lambda c, d=day: pp.session(c, token, now + d * DAY + 1))
        assert alive is not None and alive.last_seen == now + day * DAY
    site.write(lambda c: pp.touch_session(c, sess.id, now + 90 * DAY))
    assert site.read(lambda c: pp.session(c, token, now + 90 * DAY + 1)) is None
    listed = site.read(lambda c: pp.sessions_of(c, ana.id))
    assert [s["id"] for s in listed] == [sess.id, sess2.id]
    assert listed[0]["user_agent"] == "Firefox" + "x" * 193 and set(listed[0]) == {
        "id", "created", "last_seen", "user_agent"}
    site.write(lambda c: pp.close_session(c, token2))
    assert site.read(lambda c: pp.session(c, token2, now)) is None
    site.write(lambda c: pp.close_session(c, "unknown"))  # no error


def test_revoking_sessions_own_or_as_admin(site):
    ana, carla, dan = site.join("Ana", "admin"), site.join("Carla"), site.join("Dan")
    now = now_ms()
    ta, sa = site.write(lambda c: pp.open_session(c, ana.id, "a", now))
    tc, sc = site.write(lambda c: pp.open_session(c, carla.id, "c", now))
    site.refused(NotFound, "session-unknown", lambda: site.write(
        lambda c: pp.revoke_session(c, dan, sc.id)))
    site.refused(NotFound, "session-unknown", lambda: site.write(
        lambda c: pp.revoke_session(c, carla, "nonexistent")))
    site.write(lambda c: pp.revoke_session(c, carla, sc.id))
    assert site.read(lambda c: pp.session(c, tc, now)) is None
    tc, sc = site.write(lambda c: pp.open_session(c, carla.id, "c", now))
    site.write(lambda c: pp.revoke_session(c, ana, sc.id))
    assert site.read(lambda c: pp.session(c, tc, now)) is None
    assert site.read(lambda c: pp.session(c, ta, now)) == sa


def test_removing_a_person_ends_all_their_sessions_and_invites_at_once(site):
    ana, bea = site.join("Ana", "admin"), site.join("Bea", "admin")
    now = now_ms()
    tokens = [site.write(lambda c: pp.open_session(c, bea.id, "x", now))[0] for _ in range(3)]
    pending = site.invite("reader", by=bea)
    site.write(lambda c: pp.revoke_person(c, ana, bea.id, now))
    assert all(site.read(lambda c, t=t: pp.session(c, t, now)) is None for t in tokens)
    assert site.read(lambda c: pp.sessions_of(c, bea.id)) == []
    site.refused(NotFound, "invite-unknown", lambda: site.read(
        lambda c: pp.invite(c, pending, now)))
    site.refused(NotFound, "person-unknown", lambda: site.write(
        lambda c: pp.open_session(c, bea.id, "x", now)))
    listed = {p["name"]: p for p in site.read(pp.list_people)}
    assert listed["Bea"]["revoked"] == now and listed["Ana"]["revoked"] is None
    assert set(listed["Ana"]) == {"id", "name", "role", "language", "created", "revoked"}
    site.refused(NotFound, "person-unknown", lambda: site.write(
        lambda c: pp.revoke_person(c, None, bea.id)))


def test_the_last_admin_stays(site):
    ana, carla = site.join("Ana", "admin"), site.join("Carla")
    site.refused(Conflict, "last-admin", lambda: site.write(
        lambda c: pp.revoke_person(c, ana, ana.id)))
    site.refused(Conflict, "last-admin", lambda: site.write(
        lambda c: pp.revoke_person(c, None, ana.id)))
    site.refused(Conflict, "last-admin", lambda: site.write(
        lambda c: pp.set_role(c, None, ana.id, "coordinator")))
    site.refused(Forbidden, "admin-only", lambda: site.write(
        lambda c: pp.revoke_person(c, carla, ana.id)))
    site.refused(Forbidden, "admin-only", lambda: site.write(
        lambda c: pp.set_role(c, carla, carla.id, "admin")))
    site.refused(Invalid, "invalid-field", lambda: site.write(
        lambda c: pp.set_role(c, ana, carla.id, "boss")), field="role")
    site.refused(NotFound, "person-unknown", lambda: site.write(
        lambda c: pp.set_role(c, ana, "000000000000", "reader")))
    site.write(lambda c: pp.set_role(c, ana, carla.id, "admin"))
    site.write(lambda c: pp.set_role(c, carla, ana.id, "reader"))  # now there is another
    site.refused(Conflict, "last-admin", lambda: site.write(
        lambda c: pp.revoke_person(c, carla, carla.id)))
    assert {p["name"]: p["role"] for p in site.read(pp.list_people)} == {
        "Ana": "reader", "Carla": "admin"}


def test_language_choice(site):
    ana = site.join("Ana", "admin")
    for given, stored in (("es", "es"), ("pt-br", "pt-BR"), ("SR-latn", "sr-Latn"),
                          ("es-419", "es-419"), (None, None)):
        site.write(lambda c, g=given: pp.set_language(c, ana.id, g))
        assert site.home.query("SELECT language FROM people") == [(stored,)]
    for bad in ("english", "e", "es_ES", "", "es-", 12, "ar-" + "x" * 40):
        site.refused(Invalid, "invalid-field", lambda b=bad: site.write(
            lambda c: pp.set_language(c, ana.id, b)), field="language")
    site.refused(NotFound, "person-unknown", lambda: site.write(
        lambda c: pp.set_language(c, "nobody", "es")))


# -- the audit trail --------------------------------------------------------------------------


def test_acting_records_exactly_the_entries_appended_inside_it(site):
    ana = site.join("Ana", "admin")
    ledger = site.ledger
    before = ledger.transaction(lambda c: listings.post(ledger, c, "offer", deepcopy(OFFER)))
    other = Identity.generate()
    remote = make_log(other, [("offer", {"title": "remote", "category": "food",
                                        "action": "transfer"})])

    def two_posts_and_an_ingest(led: Ledger, c: sqlite3.Connection) -> list[str]:
        led.ingest(c, other.public, remote)  # another node's entry: never "made" here
        return [listings.post(led, c, "offer", deepcopy(OFFER))["id"],
                listings.post(led, c, "need", deepcopy(NEED))["id"]]

    made = ledger.transaction(lambda c: pp.acting(ana, two_posts_and_an_ingest)(ledger, c))
    assert site.home.query("SELECT count(*) FROM entry_people") == [(2,)]
    ids = [before["id"], *made, remote[0].id.hex(), "zz", "ab" * 32]
    assert site.read(lambda c: pp.posted_by(c, ids)) == {made[0]: "Ana", made[1]: "Ana"}
    # no person: nothing recorded; a failing action: nothing at all
    after = ledger.transaction(lambda c: pp.acting(None, lambda led, c2: listings.post(
        led, c2, "offer", deepcopy(OFFER)))(ledger, c))
    assert site.read(lambda c: pp.posted_by(c, [after["id"]])) == {}

    def fails(led: Ledger, c: sqlite3.Connection) -> None:
        listings.post(led, c, "offer", deepcopy(OFFER))
        raise Conflict("boom", "on purpose")

    state, entries = site.state(), site.home.entry_count()
    with pytest.raises(Conflict):
        ledger.transaction(lambda c: pp.acting(ana, fails)(ledger, c))
    assert (site.state(), site.home.entry_count()) == (state, entries)
    # the trail keeps the name of a person removed later
    site.join("Bea", "admin")
    site.write(lambda c: pp.revoke_person(c, None, ana.id))
    assert site.read(lambda c: pp.posted_by(c, made)) == {made[0]: "Ana", made[1]: "Ana"}


def test_links():
    assert pp.base_url(Config(public_url="https://aid.example.org/")) == \
        "https://aid.example.org"
    assert pp.base_url(Config(host="10.0.0.5", port=8090)) == "http://10.0.0.5:8090"
    assert pp.base_url(Config(host="0.0.0.0", port=80)) == "http://127.0.0.1:80"
    assert pp.base_url(Config(host="::1", port=8080)) == "http://[::1]:8080"
    assert pp.join_link(Config(port=9000), "tok") == "http://127.0.0.1:9000/join/tok"


# -- the CLI, through the installed entry point ------------------------------------------------


def aidmesh(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([AIDMESH, *args, "--home", str(home)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert (done.returncode == 0) == ok, done.stderr
    if not ok:
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1
        assert done.stderr.startswith("aidmesh: error: ")
    return done


def test_cli_invite_list_revoke(tmp_path):
    home = tmp_path / "node"
    out = aidmesh(home, "init", "--name", "Bakery").stdout.splitlines()
    [setup] = [line for line in out if line.startswith("Open this link to create the first")]
    assert out[-1].startswith("amt_")  # the admin token stays the last line
    setup_token = setup.rsplit("/join/", 1)[1]
    assert setup.endswith(f"http://127.0.0.1:8080/join/{setup_token}")
    out = aidmesh(home, "person", "list").stdout
    assert "nobody" in out
    out = aidmesh(home, "person", "invite", "--role", "coordinator").stdout.splitlines()
    assert "coordinator" in out[0] and "until 20" in out[0]
    link = out[-1]
    assert link.startswith("http://127.0.0.1:8080/join/")
    site = Site(NodeHome(home, Config(home=home), Identity.from_pem(
        (home / "node.key").read_bytes()), ""))
    try:
        token = link.rsplit("/", 1)[1]
        assert site.read(lambda c: pp.invite(c, token, now_ms())).role == "coordinator"
        site.write(lambda c: pp.accept_invite(c, setup_token, "Ana", PASSWORD, now_ms()))
        site.write(lambda c: pp.accept_invite(c, token, "Carla", PASSWORD, now_ms()))
        out = aidmesh(home, "person", "list").stdout.splitlines()
        assert out == ["admin       active  Ana", "coordinator active  Carla"]
        aidmesh(home, "person", "invite", "--days", "99", ok=False)
        before = site.state()
        err = aidmesh(home, "person", "revoke", "Nobody", ok=False).stderr
        assert "nobody named 'Nobody'" in err
        err = aidmesh(home, "person", "revoke", "ana", ok=False).stderr
        assert "last admin" in err
        assert site.state() == before
        _, sess = site.write(lambda c: pp.open_session(c, pp.by_name(c, "carla").id, "",
                                                       now_ms()))
        assert "removed carla" in aidmesh(home, "person", "revoke", "carla").stdout
        assert site.read(lambda c: pp.sessions_of(c, sess.person.id)) == []
        rows = [line for line in aidmesh(home, "person", "list", "--json").stdout.splitlines()]
        assert len(rows) == 2 and '"revoked": null' not in rows[1]
    finally:
        site.ledger.close()


async def test_run_prints_the_setup_link_on_a_new_node(tmp_path):
    home = tmp_path / "fresh"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    async def run_until_serving() -> list[str]:
        proc = await asyncio.create_subprocess_exec(
            AIDMESH, "run", "--home", str(home), "--port", str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT)
        lines: list[str] = []
        try:
            while not lines or not lines[-1].startswith("serving on"):
                line = await asyncio.wait_for(proc.stdout.readline(), 30)
                assert line, f"aidmesh run ended early: {lines}"
                lines.append(line.decode().rstrip("\n"))
        finally:
            proc.send_signal(2)
            try:
                await asyncio.wait_for(proc.wait(), 20)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return lines

    lines = await run_until_serving()
    [setup] = [line for line in lines if line.startswith("Open this link to create the "
                                                         "first admin account: ")]
    url_line = lines.index(next(line for line in lines if line.startswith("node URL")))
    assert lines.index(setup) > url_line
    link = setup.rsplit(" ", 1)[1]
    assert link.startswith(f"http://127.0.0.1:{port}/join/")
    site = Site(NodeHome(home, Config(home=home), Identity.from_pem(
        (home / "node.key").read_bytes()), ""))
    try:
        info = site.read(lambda c: pp.invite(c, link.rsplit("/", 1)[1], now_ms()))
        assert info.first_admin and info.role == "admin"
        site.write(lambda c: pp.accept_invite(c, link.rsplit("/", 1)[1], "Ana", PASSWORD,
                                              now_ms()))
    finally:
        site.ledger.close()
    # once someone can sign in, no setup link is printed
    assert not any("/join/" in line for line in await run_until_serving())
