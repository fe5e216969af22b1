"""Typed configs: dataclasses filled from YAML files and ``key=value`` overrides.

A config is a (possibly nested) dataclass. ``load_config(Cls, path, overrides)``
reads a YAML mapping, applies ``a.b=value`` overrides (values parsed as YAML
scalars, then checked against the field's type) and returns an instance.
Unknown keys are an error that names the valid keys and the closest match.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from clm.core.errors import UserError

T = TypeVar("T")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _unknown_key(key: str, valid: list[str], where: str, hints: dict[str, str] | None = None) -> UserError:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    if hints and key in hints:  # a key of another command that users reach for here
        hint = f" {hints[key]}."
    return UserError(
        f"unknown config key '{key}' in {where}.{hint} Valid keys: {', '.join(sorted(valid))}"
    )


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check ``value`` against the annotation ``tp``; convert where lossless."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, where)
            except UserError as e:
                errors.append(str(e))
        raise UserError(errors[0] if errors else f"bad value for '{key}' in {where}")
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise UserError(
                f"config key '{key}' in {where} must be one of {list(choices)}, got {value!r}"
            )
        return value
    if origin in (list, tuple):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
            value = [yaml.safe_load(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = [value]  # hidden=64 means one layer of 64
        if not isinstance(value, (list, tuple)):
            raise UserError(f"config key '{key}' in {where} must be a list, got {value!r}")
        (inner, *_) = typing.get_args(tp) or (Any,)
        items = [_coerce(v, inner, key, where) for v in value]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise UserError(f"config key '{key}' in {where} must be a mapping, got {value!r}")
        return _from_dict(tp, value, where=f"{where}:{key}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise UserError(f"config key '{key}' in {where} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            raise UserError(f"config key '{key}' in {where} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"config key '{key}' in {where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise UserError(f"config key '{key}' in {where} must be a finite number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise UserError(f"config key '{key}' in {where} must be a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build ``cls`` from a mapping, checking every key and value type. A
    bad key or value is a usage error (exit code 2) that names it."""
    try:
        return _from_dict(cls, data, where)
    except UserError as e:
        e.exit_code = 2
        raise


def _from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    types_ = _field_types(cls)
    kwargs = {}
    defaults = None
    removed = getattr(cls, "REMOVED_KEYS", {})
    for key, value in data.items():
        if key not in types_ and key in removed:
            raise UserError(f"config key '{key}' in {where} was removed: {removed[key]}. Drop it")
        if key not in types_:
            raise _unknown_key(key, list(types_), where, getattr(cls, "KEY_HINTS", None))
        if dataclasses.is_dataclass(types_[key]) and isinstance(value, dict):
            # A nested section overrides its parent's defaults for it, key by key.
            defaults = defaults if defaults is not None else cls()
            value = _merge(to_dict(getattr(defaults, key)), value)
        kwargs[key] = _coerce(value, types_[key], key, where)
    cfg = cls(**kwargs)
    check = getattr(cfg, "validate", None)
    if check is not None:
        check()
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain, YAML-safe mapping of a config dataclass (tuples become lists)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """Turn ``["a.b=1", "c=x"]`` into a nested mapping with YAML-parsed values."""
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise UserError(
                f"override '{pair}' is not of the form key=value (e.g. lr=0.001)", exit_code=2
            )
        key, raw = pair.split("=", 1)
        key = key.strip()
        if not key:
            raise UserError(f"override '{pair}' has an empty key", exit_code=2)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"override '{pair}' conflicts with an earlier one", exit_code=2)
        node[parts[-1]] = value
    return out


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(merged.get(k), dict):
            merged[k] = _merge(merged[k], v)
        else:
            merged[k] = v
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a clear error for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file {path} does not exist", exit_code=2)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"config file {path}{line}: not valid YAML ({e.__class__.__name__})")
    if not isinstance(data, dict):
        raise UserError(f"config file {path} must hold a mapping of key: value")
    return data


def load_config(
    cls: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> T:
    """Defaults of ``cls`` < ``base`` < YAML file ``path`` < ``overrides``."""
    data: dict[str, Any] = dict(base or {})
    where = "config"
    if path is not None:
        data = _merge(data, read_yaml(path))
        where = str(path)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
        where = "the command-line overrides" if path is None else f"{where} or the command-line overrides"
    return from_dict(cls, data, where=where)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write the resolved config as YAML (atomically)."""
    from clm.core.rundir import atomic_write_text

    atomic_write_text(Path(path), yaml.safe_dump(to_dict(cfg), sort_keys=False))
