"""Shared helpers for the benchmarks: realistic content, nodes in other processes."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import h3

from protocol.taxonomy import STARTER_TAXONOMY

CITY = (52.52, 13.40)
WORDS = ("bread apples ladder drill rides clinic tuesday shelter formula blankets soup "
         "carrots bike tools plumber childcare translation boxes chairs tomatoes").split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offer_content(rng: random.Random) -> dict:
    lat = CITY[0] + rng.uniform(-0.2, 0.2)
    lng = CITY[1] + rng.uniform(-0.3, 0.3)
    words = rng.sample(WORDS, 4)
    return {
        "title": f"{rng.randint(1, 40)} {words[0]} to share",
        "description": " ".join(rng.choices(WORDS, k=20)),
        "action": rng.choice(("transfer", "lend", "deliverService")),
        "category": rng.choice(list(STARTER_TAXONOMY)),
        "quantity": {"value": str(rng.randint(1, 50)), "unit": "items"},
        "area": h3.latlng_to_cell(lat, lng, 8),
        "tags": words[1:3],
        "available_until": 1_900_000_000_000 + rng.randint(0, 10**9),
        "language": "en",
    }


def start_node_process(home: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "AIDMESH_LOG_LEVEL": "WARNING", "AIDMESH_API_RATE_PER_S": "0",
           "AIDMESH_API_RATE_PER_ADDRESS_S": "0"}
    exe = Path(sys.executable).parent / "aidmesh"
    proc = subprocess.Popen([str(exe), "--home", str(home), "run", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"node on port {port} did not start")
