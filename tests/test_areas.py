"""Named areas (node/services/areas.py): coordinates in, a coarse cell out, nothing finer
kept. Real data dirs; the CLI through the real `aidmesh` entry point."""

from __future__ import annotations

import math
import struct
import subprocess
import sys
from pathlib import Path

import h3
import pytest

from node.services import areas
from node.services.errors import Conflict, Invalid, NotFound
from node.store.ledger import now_ms

ROOT = Path(__file__).resolve().parent.parent
AIDMESH = str(Path(sys.executable).parent / "aidmesh")
MADRID = (40.416775, -3.703790)


@pytest.fixture
def ledger(node_home):
    led = node_home.ledger()
    yield led
    led.close()


def test_a_point_becomes_a_coarse_cell():
    cell = areas.cell_of(*MADRID)
    assert areas.AREA_RESOLUTION == 7 and h3.get_resolution(cell) == 7
    assert h3.latlng_to_cell(*MADRID, 7) == cell
    assert h3.average_hexagon_area(7, unit="km^2") > 4  # a neighbourhood, not a street
    # every point nearby gives the same cell: the cell does not pin the point down
    assert areas.cell_of(MADRID[0] + 0.0005, MADRID[1] - 0.0005) == cell
    assert areas.cell_of("40.416775", "-3.70379") == cell  # text from a form
    for lat, lng in ((90, 180), (-90, -180), (0, 0)):
        assert h3.is_valid_cell(areas.cell_of(lat, lng))


@pytest.mark.parametrize("lat,lng", [(90.01, 0), (-91, 0), (0, 180.5), (0, -181),
                                     (math.nan, 0), (0, math.inf), ("north", 0), ("", 0),
                                     (None, 0), (True, 0), ([40], 3), ("1e999", 0)])
def test_bad_coordinates_are_refused(lat, lng):
    with pytest.raises(Invalid) as info:
        areas.cell_of(lat, lng)
    assert (info.value.code, info.value.field) == ("invalid-location", "location")
    assert "latitude" in info.value.detail


def test_add_list_find_remove(ledger, node_home):
    now = now_ms()
    north = ledger.transaction(lambda c: areas.add(c, "  Northside ", *MADRID, now))
    assert north == areas.Area("Northside", areas.cell_of(*MADRID))
    ledger.transaction(lambda c: areas.add(c, "centro", 40.4, -3.69, now))
    ledger.transaction(lambda c: areas.add(c, "Ávila", 40.656, -4.681, now))
    assert [a.name for a in areas.list_areas(ledger.conn)] == ["Ávila", "centro", "Northside"]
    assert areas.by_name(ledger.conn, "NORTHSIDE") == north
    assert areas.by_name(ledger.conn, "Southside") is None
    assert areas.by_name(ledger.conn, None) is None
    assert ledger.transaction(lambda c: areas.remove(c, "northside")) == north
    assert [a.name for a in areas.list_areas(ledger.conn)] == ["Ávila", "centro"]


def test_nothing_finer_than_the_cell_is_stored(ledger, node_home):
    ledger.transaction(lambda c: areas.add(c, "Home street", *MADRID, now_ms()))
    ledger.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert [r[1] for r in node_home.query("PRAGMA table_info(areas)")] == [
        "name", "cell", "created"]
    assert node_home.query("SELECT name, cell FROM areas") == [
        ("Home street", areas.cell_of(*MADRID))]
    raw = b"".join(p.read_bytes() for p in node_home.path.glob("aidmesh.db*"))
    for value in MADRID:
        assert struct.pack(">d", value) not in raw and str(value).encode() not in raw


def _areas_state(home) -> list[tuple]:
    return home.query("SELECT * FROM areas ORDER BY name")


@pytest.mark.parametrize("name", ["", "   ", "x" * 61, "a\nb", "a\x07", 5, None])
def test_bad_names_are_refused_and_nothing_changes(ledger, node_home, name):
    before = _areas_state(node_home)
    with pytest.raises(Invalid) as info:
        ledger.transaction(lambda c: areas.add(c, name, *MADRID, now_ms()))
    assert (info.value.code, info.value.field) == ("invalid-field", "name")
    assert _areas_state(node_home) == before


def test_taken_names_and_unknown_areas(ledger, node_home):
    ledger.transaction(lambda c: areas.add(c, "Northside", *MADRID, now_ms()))
    before = _areas_state(node_home)
    for taken in ("Northside", "NORTHSIDE", " northside "):
        with pytest.raises(Conflict) as info:
            ledger.transaction(lambda c, t=taken: areas.add(c, t, 1.0, 1.0, now_ms()))
        assert (info.value.code, info.value.field) == ("area-taken", "name")
        assert "'Northside'" in info.value.detail
    with pytest.raises(Invalid):  # a bad point with a free name: nothing either
        ledger.transaction(lambda c: areas.add(c, "Southside", 100, 0, now_ms()))
    with pytest.raises(NotFound) as info:
        ledger.transaction(lambda c: areas.remove(c, "Southside"))
    assert (info.value.code, info.value.field) == ("area-unknown", "name")
    assert "aidmesh area list" in info.value.detail
    assert _areas_state(node_home) == before


def aidmesh(home: Path, *args: str, ok: bool = True) -> str:
    done = subprocess.run([AIDMESH, *args, "--home", str(home)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert done.returncode == (0 if ok else 1), done.stderr
    if not ok:
        assert done.stderr.startswith("aidmesh: error: ")
        assert len(done.stderr.strip().splitlines()) == 1
        return done.stderr
    return done.stdout


def test_cli_area_add_list_remove(node_home):
    home = node_home.path
    assert "no areas yet" in aidmesh(home, "area", "list")
    out = aidmesh(home, "area", "add", "Northside", "--lat", "40.416775", "--lng", "-3.70379")
    cell = areas.cell_of(*MADRID)
    assert cell in out and "not kept" in out
    aidmesh(home, "area", "add", "Centro", "--lat", "40.4", "--lng", "-3.69")
    assert aidmesh(home, "area", "list").splitlines() == [
        f"{areas.cell_of(40.4, -3.69)}  Centro", f"{cell}  Northside"]
    assert aidmesh(home, "area", "list", "--json").splitlines()[1] == \
        f'{{"name": "Northside", "cell": "{cell}"}}'
    before = _areas_state(node_home)
    assert "exists already" in aidmesh(home, "area", "add", "northside", "--lat", "1",
                                       "--lng", "1", ok=False)
    assert "(location)" in aidmesh(home, "area", "add", "X", "--lat", "91", "--lng", "0",
                                   ok=False)
    assert "no area named" in aidmesh(home, "area", "remove", "Southside", ok=False)
    assert _areas_state(node_home) == before
    assert "removed area Northside" in aidmesh(home, "area", "remove", "NORTHSIDE")
    assert [r[0] for r in _areas_state(node_home)] == ["Centro"]
