"""Typed settings: one declaration gives a setting's type, default, help, choices and check.

A configuration section is a dataclass whose fields are declared with
:func:`setting`. From that one declaration minivae builds the command-line flags
(:func:`add_flags`), validates values from the command line *and* from JSON/TOML
files by the same code (:func:`coerce_section`), and writes the resolved record
(``dataclasses.asdict``) -- the pattern of pythae's typed configs. Nothing here
knows about VAEs; the run layer and the objectives declare their own sections.

Kinds: ``int``, ``float`` (finite), ``bool``, ``str``, and the lists ``ints``,
``floats``, ``strs`` (a list, or comma-separated text). Text from the command line
is parsed; from a file, JSON's own types are required (``"epochs": 1.7``, ``true``
or ``1e400`` are refused, numbers given as strings are parsed).
"""
from __future__ import annotations

import argparse
import dataclasses
import math


class SettingError(ValueError):
    """A setting's value is invalid; the message names the setting and what is allowed."""


def setting(default, help: str, *, kind: str, choices=None, check=None, optional: bool = False):
    """A dataclass field with its metadata. ``optional``: ``None`` means "resolved later"
    (e.g. from a preset) and never reaches a written record."""
    meta = {"help": help, "kind": kind, "choices": tuple(choices) if choices else None, "check": check,
            "optional": optional}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda d=tuple(default): list(d), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# ------------------------------------------------------------------------------------ checks
# Each check returns None when the value is fine, else what is required (a phrase).

def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def at_least(n):
    return lambda v: None if v >= n else f"must be >= {n}"


def between(lo, hi, *, open_lo=False, open_hi=False):
    def check(v):
        ok = (v > lo if open_lo else v >= lo) and (v < hi if open_hi else v <= hi)
        return None if ok else f"must lie in {'(' if open_lo else '['}{lo:g}, {hi:g}{')' if open_hi else ']'}"
    return check


def each(check):
    """Apply ``check`` to every element of a list setting."""
    def check_all(values):
        for v in values:
            problem = check(v)
            if problem:
                return f"every value {problem} (got {v:g})" if isinstance(v, (int, float)) else problem
        return None
    return check_all


def non_empty(values):
    return None if values else "must not be empty"


# ------------------------------------------------------------------------------------ coercion

def _scalar(value, kind, name):
    if kind == "str":
        if isinstance(value, str) and value.strip():
            return value.strip()
        raise SettingError(f"{name} must be a non-empty string, got {value!r}")
    if isinstance(value, bool):
        if kind == "bool":
            return value
        raise SettingError(f"{name} must be {'an integer' if kind == 'int' else 'a number'}, got {value!r}")
    if kind == "bool":
        text = str(value).strip().lower() if isinstance(value, str) else None
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise SettingError(f"{name} must be true or false, got {value!r}")
    if kind == "int":
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise SettingError(f"{name} must be an integer, got {value!r}")
    if kind == "float":
        if isinstance(value, (int, float)) or isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
            if number is not None and math.isfinite(number):
                return number
            if number is not None:
                raise SettingError(f"{name} must be a finite number, got {value!r}")
        raise SettingError(f"{name} must be a number, got {value!r}")
    raise TypeError(f"unknown setting kind {kind!r}")


def coerce(value, kind: str, name: str):
    """``value`` as the setting's kind, or one :class:`SettingError` saying what was wrong."""
    if kind in ("ints", "floats", "strs"):
        if isinstance(value, str):
            items = [v for v in (p.strip() for p in value.split(",")) if v]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and kind != "strs":
            items = [value]
        else:
            raise SettingError(f"{name} must be a list or comma-separated values, got {value!r}")
        return [_scalar(v, kind[:-1], name) for v in items]
    return _scalar(value, kind, name)


def coerce_section(cls, values: dict, where: str = ""):
    """An instance of the dataclass ``cls`` from ``values`` (only its own keys), every value
    coerced and checked. Unknown keys are the caller's business."""
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        kwargs[f.name] = check_value(f, values[f.name], where)
    return cls(**kwargs)


def check_value(f: dataclasses.Field, value, where: str = ""):
    """One field's value coerced and checked (``None`` only where the field is optional)."""
    meta = f.metadata
    name = f"{where}{f.name}"
    if value is None:
        if meta.get("optional"):
            return None
        raise SettingError(f"{name} must be {_describe(meta['kind'])}, got null; leave it out for the default "
                           f"({_default_text(f)})")
    value = coerce(value, meta["kind"], name)
    if meta.get("choices"):
        wrong = [v for v in (value if isinstance(value, list) else [value]) if v not in meta["choices"]]
        if wrong:
            raise SettingError(f"{name}: unknown value {wrong[0]!r}; choose from: {', '.join(meta['choices'])}")
    if meta.get("check"):
        problem = meta["check"](value)
        if problem:
            raise SettingError(f"{name} {problem}, got {value!r}")
    return value


def _describe(kind):
    return {"int": "an integer", "float": "a number", "bool": "true or false", "str": "a string",
            "ints": "a list of integers", "floats": "a list of numbers", "strs": "a list of names"}[kind]


def _default_text(f):
    if f.default is not dataclasses.MISSING:
        return "automatic" if f.default is None else repr(f.default)
    return repr(f.default_factory())


# ------------------------------------------------------------------------------------ flags

def flag_name(key: str) -> str:
    return "--" + key.replace("_", "-")


def add_flags(parser, cls, skip=(), help_suffix=None) -> list:
    """One flag per field of ``cls`` (values kept as text; checked later by :func:`check_value`)."""
    added = []
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        meta = f.metadata
        text = meta["help"]
        if meta.get("choices"):
            text += f" ({' | '.join(meta['choices'])})"
        if help_suffix and help_suffix.get(f.name):
            text += help_suffix[f.name]
        if "(default" not in meta["help"]:      # a help that says its own default keeps it
            text += f" [default: {_default_text(f)}]"
        parser.add_argument(flag_name(f.name), dest=f.name, default=argparse.SUPPRESS,
                            metavar=f.name.upper() if meta["kind"] != "bool" else "true|false", help=text)
        added.append(f.name)
    return added


__all__ = ["SettingError", "add_flags", "at_least", "between", "check_value", "coerce", "coerce_section",
           "each", "flag_name", "non_empty", "non_negative", "positive", "setting"]
