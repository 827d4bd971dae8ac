"""The data dir: key file (0600), config, database. Created once, on first use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from protocol import Identity

from .config import Config, load_config
from .services.ledger import open_ledger
from .services.tokens import create_token
from .store.files import private_database, private_dir, private_file
from .store.ledger import now_ms


class HomeError(Exception):
    """The data dir is missing, unreadable or unsafe; the message says what to do."""


@dataclass
class Initialised:
    config: Config
    identity: Identity
    admin_token: str | None


def load_identity(config: Config) -> Identity:
    path = config.key_path
    if not path.exists():
        raise HomeError(f"no key file at {path}; run 'aidmesh init' (or 'aidmesh run', which "
                        "initialises a new data dir)")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise HomeError(f"{path} is readable by other users (mode {mode:o}); "
                        f"run 'chmod 600 {path}'")
    return Identity.from_pem(path.read_bytes())


def initialise(home: str | Path | None = None, *, name: str | None = None) -> Initialised:
    """Create key, config and database if absent; a first admin token on first creation."""
    config = load_config(home)
    private_dir(config.home)
    fresh = not config.key_path.exists()
    if fresh:
        identity = Identity.generate()
        fd = os.open(config.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(identity.to_pem())
    else:
        identity = load_identity(config)
    if not config.config_path.exists():
        if name:
            config.name = name
        private_file(config.config_path)
        config.config_path.write_text(config.to_toml())
    private_file(config.config_path)  # also tightens one written by an older version
    private_database(config.db_path)
    ledger = open_ledger(config.db_path, identity, config.max_matches_per_listing)
    try:
        token = None
        if fresh:
            profile = {"name": config.name[:100], "seal_key": identity.seal_public()}
            token = ledger.transaction(lambda c: (
                ledger.append_local(c, "profile", profile),
                create_token(c, "admin", "first admin", now_ms())[1],
            )[1])
    finally:
        ledger.close()
    return Initialised(config, identity, token)
