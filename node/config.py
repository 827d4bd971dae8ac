"""Node configuration: TOML file in the data dir, overridden by environment variables.

Defaults are chosen for a volunteer running one node on a laptop or a small VPS:
loopback only, read access closed, limits that keep a Raspberry Pi responsive.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from protocol.taxonomy import is_category
from protocol.units import UNIT_CODE_RE, lookup

DEFAULT_HOME = "aidmesh-data"
CONFIG_FILE = "aidmesh.toml"


class ConfigError(Exception):
    """The config file or an environment override is invalid; the message says how to fix."""


@dataclass
class Config:
    home: Path = field(default_factory=lambda: Path(DEFAULT_HOME))
    host: str = "127.0.0.1"
    port: int = 8080
    name: str = "aidmesh node"
    # Anonymous clients may read offers and needs (never write) when true.
    open_read: bool = False
    # Public base URL peers use to reach this node (announced in trust entries).
    public_url: str = ""
    max_body_bytes: int = 256 * 1024
    # The edge (node/serve.py): whole request headers within this many seconds of
    # connecting or of the last response (also the idle keep-alive timeout); request
    # bodies within body_timeout_s; connection caps in all and per client address.
    header_timeout_s: float = 5.0
    body_timeout_s: float = 10.0
    max_connections: int = 768
    max_connections_per_address: int = 64
    # Outbound calls (peers, webhooks): extra refused address ranges (comma-separated
    # CIDRs), checked after DNS; webhooks may call loopback / link-local only if allowed.
    outbound_deny: str = ""
    # Behind a reverse proxy (Caddy, nginx on this machine): its address(es). Requests
    # from it are taken to come from the last X-Forwarded-For address, so rate limits and
    # sign-in limits count each person, not the proxy; any other caller is refused.
    trusted_proxies: list[str] = field(default_factory=list)
    webhook_allow_local: bool = False
    # Client API rate limits (requests/s sustained, and bursts) per token and per address;
    # 0 turns one off. Federation has its own per-peer limits.
    api_rate_per_s: float = 50.0
    api_burst: int = 200
    api_rate_per_address_s: float = 100.0
    api_burst_per_address: int = 400
    page_size: int = 50
    max_page_size: int = 200
    # Federation: replicate authors within this many trust hops.
    hops: int = 2
    gossip_interval_s: float = 30.0
    # Expired offers/needs keep their payload this long before local erasure.
    retention_days: int = 30
    # Matching keeps each listing's best this many counterparts (node/state/matching.py,
    # MAX_MATCHES); 0 keeps every fitting pair, which N needs and N offers make N².
    max_matches_per_listing: int = 20
    # The group's own vocabulary beyond the starter lists (docs/protocol.md §9.7, §11):
    # category paths like "food/soup" and unit codes like "pallet". Published in the
    # group's profile; the environment takes them comma-separated.
    categories: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    log_level: str = "INFO"

    @property
    def db_path(self) -> Path:
        return self.home / "aidmesh.db"

    @property
    def key_path(self) -> Path:
        return self.home / "node.key"

    @property
    def config_path(self) -> Path:
        return self.home / CONFIG_FILE

    def to_toml(self) -> str:
        lines = ["# aidmesh node configuration. Environment variables AIDMESH_<NAME> override.",
                 "# The data dir itself is chosen with --home or AIDMESH_HOME."]
        for key, value in asdict(self).items():
            if key == "home":
                continue
            if isinstance(value, list):
                text = "[" + ", ".join(_quote(str(v)) for v in value) + "]"
            elif isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = str(value)
            else:
                text = _quote(str(value))
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _coerce(name: str, kind: type, value: object, source: str) -> object:
    if kind is list:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise ConfigError(f"{source}: {name} must be a list of strings, got {value!r}")
        return [v.strip() for v in items if v.strip()]
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        if kind is int and isinstance(value, bool):
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{source}: {name} must be a {kind.__name__}, got {value!r}") from None


def load_config(home: str | Path | None = None, env: dict[str, str] | None = None) -> Config:
    """Defaults < aidmesh.toml in the data dir < AIDMESH_* environment variables."""
    env = dict(os.environ) if env is None else env
    home_path = Path(home or env.get("AIDMESH_HOME") or DEFAULT_HOME)
    cfg = Config(home=home_path)
    types = {f.name: type(getattr(cfg, f.name)) for f in fields(cfg) if f.name != "home"}
    if cfg.config_path.exists():
        try:
            data = tomllib.loads(cfg.config_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{cfg.config_path}: not valid TOML ({exc})") from None
        for key, value in data.items():
            if key not in types:
                raise ConfigError(f"{cfg.config_path}: unknown setting {key!r}; known: "
                                  f"{', '.join(sorted(types))}")
            setattr(cfg, key, _coerce(key, types[key], value, str(cfg.config_path)))
    for key, kind in types.items():
        var = "AIDMESH_" + key.upper()
        if var in env:
            setattr(cfg, key, _coerce(key, kind, env[var], var))
    if not 0 < cfg.port < 65536:
        raise ConfigError(f"port must be 1-65535, got {cfg.port}")
    if cfg.hops < 0:
        raise ConfigError("hops must be 0 or more")
    if not 0 <= cfg.max_matches_per_listing <= 500:
        raise ConfigError("max_matches_per_listing must be 0-500 (0: no bound), got "
                          f"{cfg.max_matches_per_listing}")
    _check_vocabulary(cfg)
    for proxy in cfg.trusted_proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise ConfigError(f"trusted_proxies: {proxy!r} is not an IP address or network "
                              "(the reverse proxy's, e.g. 127.0.0.1)") from None
    if min(cfg.header_timeout_s, cfg.body_timeout_s) <= 0 or min(
            cfg.max_connections, cfg.max_connections_per_address) < 1:
        raise ConfigError("header_timeout_s and body_timeout_s must be above 0, "
                          "max_connections and max_connections_per_address at least 1")
    return cfg


def _check_vocabulary(cfg: Config) -> None:
    """Declared categories are well-formed paths; declared units are codes the unit
    vocabulary does not already know (a synonym would never be used: it is normalised)."""
    for path in cfg.categories:
        if not is_category(path):
            raise ConfigError(f"categories: {path!r} is not a category path like "
                              "'food/soup' (lowercase segments a-z 0-9 -, at most 4)")
    for code in cfg.units:
        known = lookup(code)
        if known is not None:
            raise ConfigError(f"units: {code!r} is already known as {known.code!r}; "
                              "declare only units the vocabulary lacks")
        if not UNIT_CODE_RE.match(code):
            raise ConfigError(f"units: {code!r} is not a unit code like 'pallet' "
                              "(a-z, 0-9 and -, at most 32)")
    if len(cfg.categories) > 100 or len(cfg.units) > 50 or len(set(cfg.categories)) != len(
            cfg.categories) or len(set(cfg.units)) != len(cfg.units):
        raise ConfigError("categories (at most 100) and units (at most 50) must not repeat")
