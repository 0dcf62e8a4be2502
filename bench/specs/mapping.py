"""Frozen specifications from plain mappings: ``SpecError``, YAML reading, validation and content hashes.

Every spec is built from plain YAML/JSON mappings by ``from_mapping``: pydantic validates the mapping (the schemas
are in ``bench.specs.schema``), and its first error becomes a one-line ``SpecError`` naming the file and the field
(with a did-you-mean hint for an unknown key), so a typo never silently drops a setting. A ``RunSpec`` hashes to
its content-addressed run id (``content_hash``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from bench.specs.schema import field_path, init_fields, input_position, mapping_adapter


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


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads YAML 1.2 floats: the core schema's float needs no dot and no exponent
    sign (``1e-3``, ``1E5``, ``.5``), where YAML 1.1, PyYAML's own, reads ``1e-3`` as text. Integers (tried first)
    and the other scalars are YAML 1.1's, as before."""


YamlLoader.add_implicit_resolver(  # the float rule of the YAML 1.2 core schema (spec 1.2.2, section 10.3.2)
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"),
    list("-+.0123456789"))


def load_yaml(text: str) -> Any:
    """The document of YAML ``text`` under ``YamlLoader``: what every file the suite reads from users is parsed by."""
    return yaml.load(text, Loader=YamlLoader)  # safe: a SafeLoader, which builds no arbitrary objects


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Parse a YAML mapping (``load_yaml``); a syntax error or a non-mapping document becomes one ``SpecError``
    line."""
    path = Path(path)
    try:
        data = load_yaml(path.read_bytes().decode("utf-8"))
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


def from_mapping(cls: type, data: Any, source: str, path: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, validated by pydantic (``bench.specs.schema``); unknown or missing
    fields and wrong types raise ``SpecError``.

    Messages read ``<source>: <field.path>: <problem>``, e.g. ``leaderboards/x.yaml: budget.stpes: unknown field``.
    A dataclass's ``__post_init__`` may raise ``ValueError("field: problem")``; it is re-raised with the location.
    """
    try:
        return mapping_adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise _spec_error(cls, data, exc, source, path) from None


def _spec_error(cls: type, data: Any, exc: ValidationError, source: str, path: str) -> SpecError:
    """The one-line ``SpecError`` of the error the input shows first: the first in file order (a missing field
    after the fields given), where unknown keys of a mapping come before the errors inside it."""
    errors = sorted(exc.errors(include_url=False), key=lambda e: input_position(cls, data, e["loc"]))
    first = errors[0]
    unknown = [e for e in errors if e["type"] in ("extra_forbidden", "invalid_key")
               and first["loc"][:len(e["loc"]) - 1] == e["loc"][:-1]]
    error = min(unknown, key=lambda e: len(e["loc"])) if unknown else first
    loc, kind, value = error["loc"], error["type"], error.get("input")
    if kind in ("extra_forbidden", "invalid_key"):
        where, owner = field_path(cls, loc[:-1], path)
        return SpecError(f"{source}: {_unknown_field(owner, loc[-1], where)}")
    if loc[-1:] == ("[key]",):
        where, _ = field_path(cls, loc[:-2], path)
        return SpecError(f"{_loc(source, where)}: keys must be text, got {type(loc[-2]).__name__} {loc[-2]!r}")
    where, _ = field_path(cls, loc, path)
    if kind == "value_error":
        return _check_error(error["ctx"]["error"], source, where)
    return SpecError(f"{_loc(source, where)}: {_problem(kind, value, error['msg'])}")


def _unknown_field(owner: type, key: Any, where: str) -> str:
    """``<path>.<key>: unknown field`` with the closest field name of ``owner`` (or all of them)."""
    fields = init_fields(owner)
    close = difflib.get_close_matches(str(key), fields, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else f" (allowed: {', '.join(fields)})"
    shown = key if isinstance(key, str) and key.isprintable() and key.strip() else repr(key)
    return f"{where}.{shown}: unknown field{hint}" if where else f"{shown}: unknown field{hint}"


def _check_error(error: BaseException, source: str, where: str) -> SpecError:
    """A ``__post_init__`` check's ``"field: problem"`` located at its dataclass ``where``."""
    prefix = f"{where}." if where else ""
    if isinstance(error, SpecError):
        message = str(error)
        return SpecError(f"{source}: {prefix}{message}" if source and not message.startswith(source) else message)
    return SpecError(f"{source}: {prefix}{_one_line(error)}")


_EXPECTED = {"int_type": "an integer", "float_type": "a number", "string_type": "str", "bool_type": "bool",
             "tuple_type": "a list", "dict_type": "a mapping", "none_required": "null"}


def _problem(kind: str, value: Any, message: str) -> str:
    """What is wrong with ``value``, in the words of the checks pydantic replaced."""
    if kind == "missing":
        return "missing required field"
    if kind == "finite_number":
        return f"expected a finite number, got {value!r}"
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return f"number out of range: {value!r}"  # an integer too large for a float
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {type(value).__name__} {value!r}"
    return _one_line(message)
