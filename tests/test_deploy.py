"""What docs/operating.md ships: the systemd unit is valid, and the guide's commands
are the CLI's (backup and restore themselves: tests/test_backup_restore.py)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from node.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "aidmesh.service"
GUIDE = ROOT / "docs" / "operating.md"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed here")
def test_the_systemd_unit_verifies(tmp_path):
    # The unit names /opt/aidmesh; point it at this checkout's aidmesh to verify it.
    aidmesh = Path(sys.executable).parent / "aidmesh"
    unit = tmp_path / "aidmesh.service"
    unit.write_text(UNIT.read_text().replace("/opt/aidmesh/.venv/bin/aidmesh", str(aidmesh)))
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "aidmesh.service" not in done.stderr, done.stderr  # no warning about our unit


def test_every_command_in_the_guide_exists():
    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    text = GUIDE.read_text()
    code = re.findall(r"```.*?```", text, re.S) + re.findall(r"`[^`\n]+`", text)
    used = re.findall(r"aidmesh(?: --home \S+)? ([a-z]+)", "\n".join(code))
    assert used and set(used) <= commands, set(used) - commands
