"""Checking values against typed fields, and quoting them safely: the one field parser.

It checks ``params.yaml`` here and, through :mod:`numpynet.records`, every JSON record numpynet
writes for itself and reads back.

A section of ``params.yaml`` is described by a frozen dataclass (see :mod:`numpynet.config`):
each field's annotation gives its type, and its metadata (made by :func:`field_check`) a range
check and the phrase telling the user what is accepted. :func:`parse_fields` checks a mapping
against such a dataclass and appends one line per problem to a list, so every problem of a file is
reported at once.

Error messages quote values the user wrote, and a value may be huge (a long string, a list of a
million items): :func:`show` quotes a value in a bounded number of characters, whatever its size.
"""

from __future__ import annotations

import dataclasses
import math
import re
import reprlib
from typing import Any, Callable

# Bounds that keep any quoted value to a line or so.
_QUOTE = reprlib.Repr()
_QUOTE.maxstring = 60
_QUOTE.maxother = 60
_QUOTE.maxlong = 40
_QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxset = _QUOTE.maxfrozenset = 6
_QUOTE.maxdict = 4
_QUOTE.maxlevel = 3

# Keys that read unambiguously without quotes in a key path such as train.lr.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def show(value: Any) -> str:
    """``repr(value)``, shortened with ``...`` so that it never runs past about 100 characters."""
    try:
        return _QUOTE.repr(value)
    except ValueError:
        # Python refuses to print an int of more than 4300 digits.
        return f"<an integer of {value.bit_length()} bits>"


def show_key(key: Any) -> str:
    """A mapping key as it goes into a key path: bare when plain, else quoted by :func:`show`."""
    return key if isinstance(key, str) and _PLAIN_KEY.fullmatch(key) else show(key)


def describe(value: Any) -> str:
    """The type and a bounded quote of ``value``, for 'wrong type' messages."""
    return f"{type(value).__name__} {show(value)}"


def is_int(value: Any) -> bool:
    """Whether ``value`` is an integer and not a bool (YAML's ``true`` would pass as 1)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """Whether ``value`` is an int or float that fits a finite float, and not a bool."""
    return _as_float(value) is not None


def _as_float(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is no number or too large for one."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)  # an int past 1.8e308 raises instead of becoming inf
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def field_check(predicate: Callable[[Any], bool], accepts: str) -> dict:
    """Field metadata: a range check and the phrase that tells the user what is accepted."""
    return {"check": predicate, "accepts": accepts}


def parse_section(cls, raw: Any, path: str, problems: list[str]):
    """A whole section: every field of dataclass ``cls`` without a default must be present, and
    every field given must be valid.

    Returns an instance of ``cls``, or None after appending the problems found to ``problems``.
    """
    if raw is None:
        problems.append(f"{path}: section is missing")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{path}: expected a mapping, got {describe(raw)}")
        return None
    values = parse_fields(cls, raw, path, problems, required=True)
    return cls(**values) if len(values) == len(dataclasses.fields(cls)) else None


def parse_fields(cls, raw: dict, path: str, problems: list[str], required: bool) -> dict:
    """Check the keys of ``raw`` against the fields of dataclass ``cls``; return the valid values.

    Each problem is appended to ``problems`` with its key path under ``path`` (the bare key when
    ``path`` is empty, as for the records of :mod:`numpynet.records`). A field absent from
    ``raw`` is a problem only when ``required`` and it has no default; with one, a required field
    takes its default (a key added later may be left out of older params files).
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    prefix = f"{path}." if path else ""
    for key in sorted(set(raw) - set(fields), key=str):
        problems.append(f"{prefix}{show_key(key)}: unknown key (accepted: {', '.join(fields)})")
    values = {}
    for name, spec in fields.items():
        key_path = f"{prefix}{name}"
        if name not in raw:
            if required and spec.default is not dataclasses.MISSING:
                values[name] = spec.default
            elif required:
                problems.append(f"{key_path}: missing (expected {_expected(spec)})")
            continue
        value, error = _coerce(raw[name], spec.type)
        checked = error is None and value is not None and "check" in spec.metadata
        if checked and not spec.metadata["check"](value):
            error = f"got {show(raw[name])}"
        if error is not None:
            problems.append(f"{key_path}: {error}; expected {_expected(spec)}")
            continue
        values[name] = value
    return values


def _expected(spec: dataclasses.Field) -> str:
    if spec.metadata.get("accepts"):
        return spec.metadata["accepts"]
    optional = spec.type.endswith(" | None")
    name = _TYPE_NAMES[spec.type.removesuffix(" | None")]
    return f"{name} or null" if optional else name


_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "str": "a string",
    "list[int]": "a list of integers",
    "list[float]": "a list of numbers",
    "list[str]": "a list of strings",
    "dict[str, int]": "a mapping of names to integers",
    "dict[str, str]": "a mapping of names to strings",
}


def _coerce(value: Any, type_name: str) -> tuple[Any, str | None]:
    """Check ``value`` against a field's annotation; return (value, None) or (None, problem)."""
    wrong = f"wrong type {describe(value)}"
    if type_name.endswith(" | None"):
        return (None, None) if value is None else _coerce(value, type_name.removesuffix(" | None"))
    if type_name == "bool":
        return (value, None) if isinstance(value, bool) else (None, wrong)
    if type_name == "int":
        return (value, None) if is_int(value) else (None, wrong)
    if type_name == "float":
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None, wrong
        number = _as_float(value)
        if number is None:
            return None, f"got {show(value)}, which is not finite"
        return number, None
    if type_name == "str":
        return (value, None) if isinstance(value, str) else (None, wrong)
    if type_name.startswith("list["):
        if not isinstance(value, list):
            return None, wrong
        items = []
        for i, item in enumerate(value):
            item_value, error = _coerce(item, type_name[5:-1])
            if error is not None:
                return None, f"item {i}: {error}"
            items.append(item_value)
        return items, None
    if type_name.startswith("dict[str, "):
        if not isinstance(value, dict):
            return None, wrong
        entries = {}
        for key, item in value.items():
            item_value, error = _coerce(item, type_name[10:-1])
            if not isinstance(key, str) or error is not None:
                return None, f"entry {show_key(key)}: {error or 'the key is no string'}"
            entries[key] = item_value
        return entries, None
    raise AssertionError(f"no coercion for annotation {type_name}")
