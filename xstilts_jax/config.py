"""Experiment configs: a Python file with ``get_config(arg)`` plus typed command-line overrides.

``--config configs/xnli.py:mnli`` calls ``get_config("mnli")`` (big_vision style);
``--config.target.learning_rate=2e-5`` overrides one field, parsed with the type the field
already has. An unknown key is an error naming the closest known keys (MaxText style): a typo
must never silently train the default.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import json
import pathlib
from typing import Any, Sequence

import ml_collections


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says which and why."""


def call_in_file(spec: str, function: str, *, what: str = "config"):
    """``path/to/file.py[:arg]`` -> what the file's ``function(arg)`` returns (``function()``
    without an arg); a file that is missing, fails to load, lacks the function or refuses the
    arg (KeyError, ValueError) is a ConfigError naming it."""
    path_text, _, arg = spec.partition(":")
    path = pathlib.Path(path_text)
    if not path.is_file():
        raise ConfigError(f"{path}: no such {what} file")
    module_name = f"xstilts_{what.replace(' ', '_')}_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise ConfigError(f"{path}: cannot load: {type(e).__name__}: {e}") from e
    if not hasattr(module, function):
        raise ConfigError(f"{path}: defines no {function}(arg)")
    try:
        return getattr(module, function)(arg) if arg else getattr(module, function)()
    except (KeyError, ValueError) as e:
        raise ConfigError(f"{path}:{function}({arg!r}): {e}") from e


def load_config_file(spec: str) -> ml_collections.ConfigDict:
    """``path/to/file.py[:arg]`` -> the ConfigDict its ``get_config(arg)`` returns."""
    config = call_in_file(spec, "get_config")
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"{spec.partition(':')[0]}: get_config returned "
                          f"{type(config).__name__}, expected a ConfigDict")
    return config


def _all_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in config.items():
        keys.append(prefix + k)
        if isinstance(v, ml_collections.ConfigDict):
            keys.extend(_all_keys(v, prefix + k + "."))
    return keys


def _parse_value(text: str, current: Any, key: str) -> Any:
    if isinstance(current, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if current is None:
            return text  # an unset string field
        raise ConfigError(f"--config.{key}={text}: not a valid {type(current).__name__}") from None
    if current is None or value is None:
        return value
    if isinstance(current, bool) != isinstance(value, bool):
        raise ConfigError(f"--config.{key}={text}: expected {type(current).__name__}")
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(current)(value)
    if not isinstance(value, type(current)):
        raise ConfigError(f"--config.{key}={text}: expected {type(current).__name__}, "
                          f"got {type(value).__name__}")
    return value


def apply_overrides(config: ml_collections.ConfigDict, overrides: Sequence[str]) -> ml_collections.ConfigDict:
    """Apply ``key.path=value`` strings (the ``--config.`` prefix already removed)."""
    config = ml_collections.ConfigDict(config.to_dict())  # don't mutate the caller's
    known = _all_keys(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise ConfigError(f"--config.{item}: expected --config.KEY=VALUE")
        if key not in known:
            close = difflib.get_close_matches(key, known, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"--config.{key}: unknown config key{hint}")
        *parents, leaf = key.split(".")
        node = config
        for p in parents:
            node = node[p]
        if isinstance(node[leaf], ml_collections.ConfigDict):
            value = ast.literal_eval(text)
            if not isinstance(value, dict):
                raise ConfigError(f"--config.{key}={text}: expected a dict for this section")
            for k in value:
                if k not in node[leaf]:
                    raise ConfigError(f"--config.{key}: unknown key {k!r} in this section")
            node[leaf].update(value)
        else:
            node[leaf] = _parse_value(text, node[leaf], key)
    return config


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--config.key=value`` arguments from the rest of the command line."""
    overrides, rest = [], []
    for arg in argv:
        (overrides if arg.startswith("--config.") else rest).append(
            arg[len("--config."):] if arg.startswith("--config.") else arg)
    return overrides, rest


def to_json(config: ml_collections.ConfigDict) -> str:
    return json.dumps(config.to_dict(), indent=2, sort_keys=True, default=str)
