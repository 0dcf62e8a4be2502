"""Frozen specifications from plain mappings: ``SpecError``, YAML reading, validation and content hashes.

Every spec is built from plain YAML/JSON mappings by ``from_mapping``, which rejects unknown fields and wrong types
with a ``SpecError`` naming the file and the field (with a did-you-mean hint), so a typo never silently drops a
setting. A ``RunSpec`` hashes to its content-addressed run id (``content_hash``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml


class SpecError(ValueError):
    """Invalid user input: the message is one line naming the file and the field (line breaks in it, e.g. from a
    key or a value quoted from the input, become spaces)."""

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).splitlines()))


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_jsonable)


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def content_hash(obj: Any, length: int = 16) -> str:
    """sha256 of the canonical JSON of ``obj``, truncated to ``length`` hex digits."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:length]


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML mapping; a syntax error or a non-mapping document becomes one ``SpecError`` line."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: file not found") from exc
    except OSError as exc:  # a folder, no permission
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: invalid YAML: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or ["syntax error"])[0]
        raise SpecError(f"{path}:{where}: invalid YAML: {_one_line(problem)}") from exc
    except (ValueError, TypeError, OverflowError) as exc:  # a scalar the safe loader cannot build, e.g. 2024-13-01
        raise SpecError(f"{path}: invalid YAML: {_one_line(exc)}") from exc
    except RecursionError as exc:
        raise SpecError(f"{path}: invalid YAML: nested too deeply") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _loc(source: str, path: str) -> str:
    return f"{source}: {path}" if path else source


def _check_type(value: Any, annotation: Any, source: str, path: str) -> Any:
    """Validate (and lightly coerce: int -> float, list -> tuple) ``value`` against a type annotation."""
    where = _loc(source, path)
    origin = typing.get_origin(annotation)
    if annotation is Any:
        return value
    if annotation is type(None):
        if value is not None:
            raise SpecError(f"{where}: expected null, got {type(value).__name__} {value!r}")
        return None
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        if isinstance(value, dict):  # a mapping can only mean the structured option: report its own errors
            structured = [o for o in options if dataclasses.is_dataclass(o)]
            if structured:
                return _check_type(value, structured[0], source, path)
        errors = []
        for option in options:
            if option is type(None):  # a non-null value never matches it (the errors of the others say more)
                continue
            try:
                return _check_type(value, option, source, path)
            except SpecError as exc:
                errors.append(str(exc))
        raise SpecError(errors[-1] if errors else f"{where}: invalid value {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise SpecError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        (item_type, *_rest) = typing.get_args(annotation) or (Any,)
        return tuple(_check_type(v, item_type, source, f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        key_type, value_type = typing.get_args(annotation) or (Any, Any)
        out = {}
        for key, item in value.items():
            if key_type is str and not isinstance(key, str):
                raise SpecError(f"{where}: keys must be text, got {type(key).__name__} {key!r}")
            out[key] = _check_type(item, value_type, source, f"{path}.{key}")
        return out
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_mapping(annotation, value, source, path)
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise SpecError(f"{where}: number out of range: {value!r}") from None
        if not math.isfinite(number):
            raise SpecError(f"{where}: expected a finite number, got {value!r}")
        return number
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise SpecError(f"{where}: expected {annotation.__name__}, got {type(value).__name__} {value!r}")
        return value
    return value


def from_mapping(cls: type, data: Any, source: str, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping; unknown or missing fields and wrong types raise ``SpecError``.

    Messages read ``<source>: <field.path>: <problem>``, e.g. ``leaderboards/x.yaml: budget.stpes: unknown field``.
    A dataclass's ``__post_init__`` may raise ``ValueError("field: problem")``; it is re-raised with the location.
    """
    where = _loc(source, path)
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{path}." if path else ""
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(fields)})"
            shown = key if isinstance(key, str) and key.isprintable() and key.strip() else repr(key)
            raise SpecError(f"{source}: {prefix}{shown}: unknown field{hint}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _check_type(data[name], hints[name], source, f"{prefix}{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{source}: {prefix}{name}: missing required field")
    try:
        return cls(**kwargs)
    except SpecError as exc:
        message = str(exc)
        if source and not message.startswith(source):  # a __post_init__ raising SpecError("field: problem")
            raise SpecError(f"{source}: {prefix}{message}") from exc
        raise
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise SpecError(f"{source}: {prefix}{_one_line(exc)}") from exc
