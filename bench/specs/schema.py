"""The pydantic schemas that validate plain (YAML/JSON) mappings into the frozen spec dataclasses, and where in the
input a validation error points.

``mapping_adapter(cls)`` is a ``pydantic.TypeAdapter`` that turns a mapping into dataclass ``cls``. Each dataclass
is read as a closed ``TypedDict`` of its ``init`` fields (unknown keys are errors; a field with a default is
optional and its default, the dataclass's own, is never validated), then built, so that ``__post_init__`` checks
run and their errors are located at the dataclass. The rules of the input form:

* scalars are strict: no ``"3"`` for an int, no ``1`` for a bool, no bool for a number; an int is accepted (and
  converted) where a float is declared, and a float must be finite;
* a list (or tuple) of items gives a tuple (a YAML ``!!set`` is rejected: its order is arbitrary);
* a union picks its option from the input's kind (``_pick``), so an error speaks of one option only: null for
  ``None``, the dataclass for a mapping, else the first option of the input's own kind, else the last one;
* ``Any`` and undeclared kinds of value pass unchanged.

``field_path(cls, loc)`` maps a pydantic error location back to the input's field path (``methods[0].params``), and
``input_position(cls, data, loc)`` to its place in the input (to report errors in file order).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterator
from functools import cache, partial
from typing import Annotated, Any, NotRequired, Required, Union

from pydantic import (
    AfterValidator,
    AllowInfNan,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    TypeAdapter,
    with_config,
)
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

FINITE_FLOAT = Annotated[float, Strict(), AllowInfNan(False)]
SCALARS: dict[Any, Any] = {bool: StrictBool, int: StrictInt, float: FINITE_FLOAT, str: StrictStr}
# the Python kinds of input each declared scalar accepts (a union option is picked by them)
KINDS: dict[Any, tuple[type, ...]] = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}


@cache
def mapping_adapter(cls: type) -> TypeAdapter:
    """The validator of the mapping form of dataclass ``cls`` (``validate_python(mapping)`` returns a ``cls``)."""
    return TypeAdapter(_schema(cls))


def init_fields(cls: type) -> list[str]:
    """The fields a mapping may set: the dataclass's ``init`` fields, in declaration order."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _schema(annotation: Any) -> Any:
    """The pydantic type of the input form of a declared type (see the module docstring)."""
    if annotation is Any or annotation is type(None):
        return annotation
    if dataclasses.is_dataclass(annotation):
        return _dataclass_schema(annotation)
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return _union_schema(args)
    if origin in (tuple, list):
        item = _schema(args[0] if args else Any)
        return Annotated[tuple[item, ...], BeforeValidator(_list_as_tuple), Strict()]
    if origin is dict:
        key, value = args or (Any, Any)
        return dict[_schema(key), _schema(value)]
    return SCALARS.get(annotation, Any)


@cache
def _dataclass_schema(cls: type) -> Any:
    """A closed TypedDict of ``cls``'s init fields (required where the field has no default), built into ``cls``."""
    hints = typing.get_type_hints(cls)
    keys = {}
    for f in dataclasses.fields(cls):
        if f.init:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            keys[f.name] = (Required if required else NotRequired)[_schema(hints[f.name])]
    form = with_config(ConfigDict(extra="forbid"))(TypedDict(f"{cls.__name__}Mapping", keys))  # type: ignore[misc]
    return Annotated[form, AfterValidator(partial(_build, cls))]


def _build(cls: type, fields: dict[str, Any]) -> Any:
    """``cls(**fields)``; a ``__post_init__`` error becomes a ``ValueError`` (the kind pydantic reports)."""
    try:
        return cls(**fields)
    except (TypeError, ArithmeticError) as exc:  # e.g. a ZeroDivisionError of a check that assumed valid values
        raise ValueError(str(exc)) from exc


def _list_as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _union_schema(options: tuple[Any, ...]) -> Any:
    tagged = tuple(Annotated[_schema(option), Tag(str(i))] for i, option in enumerate(options))

    def pick(value: Any) -> str:  # pydantic names a discriminator by its __name__ (a partial has none)
        return _pick(options, value)

    return Annotated[Union[tagged], Discriminator(pick)]  # noqa: UP007 (a runtime tuple of types)


def _pick(options: tuple[Any, ...], value: Any) -> str:
    """The tag (index) of the union option that ``value`` is validated against."""
    if value is None and type(None) in options:
        return str(options.index(type(None)))
    if isinstance(value, dict):
        structured = [i for i, option in enumerate(options) if dataclasses.is_dataclass(option)]
        if structured:
            return str(structured[0])
    candidates = [i for i, option in enumerate(options) if option is not type(None)]
    for i in candidates:
        if _kind_matches(options[i], value):
            return str(i)
    return str(candidates[-1])


def _kind_matches(option: Any, value: Any) -> bool:
    """Whether ``value`` is of the kind ``option`` declares (a bool is no number)."""
    if option is Any:
        return True
    origin = typing.get_origin(option)
    if origin in (tuple, list):
        return isinstance(value, (list, tuple))
    if origin is dict or dataclasses.is_dataclass(option):
        return isinstance(value, dict)
    kinds = KINDS.get(option)
    if kinds is None:
        return False
    return isinstance(value, kinds) and (option is bool or not isinstance(value, bool))


def _walk(cls: type, loc: tuple[Any, ...]) -> Iterator[tuple[Any, str, Any]]:
    """Each step of pydantic location ``loc`` in the mapping form of ``cls``: (step, what it is: ``tag`` (a union
    option, not in the input), ``field``, ``index`` or ``key``, the declared type found there)."""
    annotation: Any = cls
    for step in loc:
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if origin in (typing.Union, types.UnionType):
            annotation, kind = args[int(step)], "tag"
        elif dataclasses.is_dataclass(annotation):
            annotation, kind = typing.get_type_hints(annotation).get(step, Any), "field"
        elif origin in (tuple, list):
            annotation, kind = (args[0] if args else Any), "index"
        else:
            annotation, kind = (args[1] if origin is dict and args else Any), "key"
        yield step, kind, annotation


def field_path(cls: type, loc: tuple[Any, ...], path: str = "") -> tuple[str, Any]:
    """The input path of pydantic location ``loc`` in the mapping form of ``cls`` under ``path`` (``budget.steps``,
    ``tasks[0]``, ``tables.main``; union tags in ``loc`` are skipped), and the declared type found there."""
    annotation: Any = cls
    for step, kind, found in _walk(cls, loc):
        annotation = found
        if kind == "index":
            path = f"{path}[{step}]"
        elif kind != "tag":
            path = f"{path}.{step}" if path else str(step)
    return path, annotation


def input_position(cls: type, data: Any, loc: tuple[Any, ...]) -> tuple[int, ...]:
    """Where pydantic location ``loc`` of the mapping form of ``cls`` lies in the input ``data``, as the positions
    along its path: a key's place among its mapping's keys (YAML keeps them in file order; a missing key comes
    after all of them), an item's index. Sorting errors by it puts them in file order."""
    position: list[int] = []
    value = data
    for step, kind, _ in _walk(cls, loc):
        if kind == "tag":
            continue
        if isinstance(value, dict):
            keys = list(value)
            position.append(keys.index(step) if step in value else len(keys))
            value = value.get(step)
        elif isinstance(value, (list, tuple)) and isinstance(step, int) and 0 <= step < len(value):
            position.append(step)
            value = value[step]
        else:
            break
    return tuple(position)
