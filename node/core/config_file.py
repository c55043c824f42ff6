"""Writing ``config.toml``: the documented template with a config's values, and
``annot config get|set`` by dotted key.

Values are rendered by tomli-w (quoting and escaping are its job, not string
formatting's); the comments come from :data:`node.core.config.DEFAULT_TOML`, so
a rewritten file keeps documenting every key. Lists stay on one line (tests and
operators edit ``bootstrap = [...]`` by line). A rendered file is read back and
must give the same config, so a key missing from the template can never be
dropped silently.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from node.core.config import DEFAULT_TOML, Config, config_from_toml, init_config
from node.errors import ConfigError

_SECTION = re.compile(r"^\[(\w+)\]\s*$")
_KEY = re.compile(r"^(\w+) = (.*?)(\s+#.*)?$")


def toml_value(v: object) -> str:
    """One TOML value (a list on one line)."""
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return tomli_w.dumps({"v": v}).removeprefix("v = ").rstrip("\n")


def render_config(p2p_port: int = 4001, rpc_port: int = 4701,
                  bootstrap: tuple[str, ...] = (), host: str = "127.0.0.1",
                  gateway_port: int | None = None) -> str:
    """The documented ``config.toml`` written by ``annot init`` (the gateway's port is
    the RPC port + 1 unless given; 0 stays 0)."""
    return render_toml(init_config(p2p_port, rpc_port, bootstrap, host, gateway_port))


def render_toml(cfg: Config) -> str:
    """``cfg`` as the documented config.toml."""
    out: list[str] = []
    section: Any = None
    for line in DEFAULT_TOML.splitlines():
        m = _SECTION.match(line)
        if m:
            section = getattr(cfg, m[1])
        elif (k := _KEY.match(line)) and section is not None:
            line = f"{k[1]} = {toml_value(getattr(section, k[1]))}{k[3] or ''}"
        out.append(line)
    text = "\n".join(out) + "\n"
    if config_from_toml(text) != cfg:
        raise ConfigError("config.toml template does not document every key (a bug)")
    return text


def save_config(path: Path, cfg: Config) -> None:
    """Validate ``cfg`` and write it atomically (a crash never leaves half a file)."""
    cfg.validate()
    text = render_toml(cfg)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _split(key: str) -> tuple[str, str]:
    section, _, name = key.partition(".")
    names = {f.name for f in fields(Config)}
    if section not in names or not name:
        raise ConfigError(f"unknown key {key!r}: use SECTION.KEY, sections "
                          f"{', '.join(sorted(names))}")
    known = {f.name for f in fields(getattr(Config(), section))}
    if name not in known:
        raise ConfigError(f"unknown key {key!r} (known in [{section}]: "
                          f"{', '.join(sorted(known))})")
    return section, name


def get_value(cfg: Config, key: str) -> Any:
    section, name = _split(key)
    return getattr(getattr(cfg, section), name)


def set_value(cfg: Config, key: str, values: tuple[str, ...]) -> Config:
    """``cfg`` with ``key`` set from command-line words: one word for a scalar (a
    TOML literal, or plain text for a string key), any number for a list key."""
    section, name = _split(key)
    current = getattr(cfg, section)
    old = getattr(current, name)
    if isinstance(old, tuple):
        new: Any = tuple(values)
    elif len(values) != 1:
        raise ConfigError(f"{key} takes one value, got {len(values)}")
    else:
        new = _parse(key, values[0], old)
    updated = replace(cfg, **{section: replace(current, **{name: new})})
    # the loader's own type checks and validate(): what `annot run` would refuse
    return config_from_toml(render_toml_unchecked(updated))


def _parse(key: str, word: str, old: object) -> Any:
    try:
        value = tomllib.loads(f"v = {word}")["v"]
    except tomllib.TOMLDecodeError:
        value = word
    if isinstance(old, str):
        return word if not isinstance(value, str) else value
    if isinstance(old, float) and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if type(value) is not type(old):
        raise ConfigError(f"{key}: expected {type(old).__name__}, got {word!r}")
    return value


def render_toml_unchecked(cfg: Config) -> str:
    """Like :func:`render_toml` without reading it back (for checking a new value)."""
    return tomli_w.dumps({f.name: _plain(getattr(cfg, f.name)) for f in fields(cfg)})


def _plain(section: object) -> dict[str, Any]:
    return {f.name: (list(v) if isinstance(v := getattr(section, f.name), tuple) else v)
            for f in fields(section)}  # type: ignore[arg-type]


def config_as_toml(cfg: Config) -> str:
    """Every key of ``cfg``, defaults included, as plain TOML (``annot config show``)."""
    return render_toml_unchecked(cfg)
