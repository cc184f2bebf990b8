"""Request parsing and validation for the hot paths, by hand: cheaper than validation models,
and every error names the field and the rule it broke."""

import json

import numpy as np
import orjson
from mlserving.server.asgi import MAX_REQUEST_ID_CHARS, usable_request_id

FLOAT32_MAX = float(np.finfo(np.float32).max)


class InputError(Exception):
    """Bad input; becomes a JSON 4xx response ``{"error": "<field>: <rule>", "field": <field>}``."""

    def __init__(self, field: str, rule: str, status: int = 422):
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.status = status


class _NonFinite:
    """Stands in for a NaN / Infinity token so validation can say which field held it."""

    __slots__ = ("token",)

    def __init__(self, token: str):
        self.token = token


def parse_json(body: bytes):
    if not body:
        raise InputError("body", "must be a JSON object, got an empty body")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    # orjson refuses NaN, Infinity and numbers like 1e999 without saying where; the standard
    # parser keeps them (as markers or inf) so the field can be named in the error.
    try:
        return json.loads(body, parse_constant=_NonFinite)
    except (ValueError, RecursionError) as exc:
        raise InputError("body", f"must be valid JSON: {exc}", status=400) from None


def parse_object(body: bytes) -> dict:
    """The body as a JSON object (the hot paths' first step)."""
    if body:
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            document = parse_json(body)
    else:
        document = parse_json(body)
    if type(document) is not dict:
        raise InputError("body", f"must be a JSON object, got {json_type(document)}")
    return document


def require_object(document, field: str = "body") -> dict:
    if type(document) is not dict:
        raise InputError(field, f"must be a JSON object, got {json_type(document)}")
    return document


def json_type(value) -> str:
    if isinstance(value, _NonFinite):
        return value.token
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


def check_request_id(value, field: str = "request_id") -> str:
    if type(value) is not str or usable_request_id(value) is None:
        raise InputError(field, f"must be a non-empty printable string of at most {MAX_REQUEST_ID_CHARS} "
                                f"characters, got {json_type(value)}")
    return value


def _bad_number(field: str, value) -> InputError:
    if isinstance(value, _NonFinite):
        return InputError(field, f"{value.token} is not allowed; must be a finite number")
    if type(value) is float or type(value) is int:
        shown = repr(value) if type(value) is float else f"an integer of {len(str(abs(value)))} digits"
        return InputError(field, f"must be a finite number within ±{FLOAT32_MAX:.4g}, got {shown}")
    return InputError(field, f"must be a number, got {json_type(value)}")


_NUMBER_TYPES = frozenset((float, int))


def _check_numbers(values: list, field: str) -> None:
    # Whole-array checks in C: every value an int or float (bool is neither), within float32 range.
    # NaN cannot reach here as a float: orjson refuses it and the fallback parser turns it into a marker.
    if set(map(type, values)) <= _NUMBER_TYPES and (
            not values or (-FLOAT32_MAX <= min(values) and max(values) <= FLOAT32_MAX)):
        return
    locate_bad_number(values, field)


def locate_bad_number(values, field: str) -> None:
    """Raises the error for the first value that is not a finite number within float32 range."""
    for i, v in enumerate(values):
        t = type(v)
        # The range test is also false for nan; bool is not accepted as a number.
        if (t is float or t is int) and -FLOAT32_MAX <= v <= FLOAT32_MAX:
            continue
        raise _bad_number(f"{field}[{i}]", v)


SMALL_ARRAY = 256  # values; below it C builtins over a list beat numpy's per-call overhead


def check_finite_array(X: np.ndarray, field: str) -> None:
    """Every value of a numeric array finite and within float32 range, checked on the whole array."""
    if X.size <= SMALL_ARRAY:
        values = X.reshape(-1).tolist()
        # min/max find an infinity or an out-of-range value; a NaN, which compares false and can
        # hide from them, makes the sum NaN.
        if not values or (-FLOAT32_MAX <= min(values) and max(values) <= FLOAT32_MAX
                          and (total := sum(values)) == total):
            return
    elif np.isfinite(X).all() and -FLOAT32_MAX <= X.min() and X.max() <= FLOAT32_MAX:
        return
    flat = X.reshape(-1)
    bad = int(np.flatnonzero(~(np.isfinite(flat) & (np.abs(flat) <= FLOAT32_MAX)))[0])
    value = float(flat[bad])
    rule = (f"{value!r} is not allowed; must be a finite number" if not np.isfinite(value) else
            f"must be a finite number within ±{FLOAT32_MAX:.4g}, got {value!r}")
    raise InputError(f"{field}[{bad}]", rule)


def feature_row(values, n_features: int, feature_index: dict, field: str) -> list:
    """One row of features: a list of n numbers in metadata order, or an object keyed by name."""
    if type(values) is dict:
        missing = [name for name in feature_index if name not in values]
        if missing:
            raise InputError(field, f"missing feature(s) {missing[:5]}; expected all of the model's "
                                    f"{n_features} feature names")
        unknown = [name for name in values if name not in feature_index]
        if unknown:
            raise InputError(field, f"unknown feature(s) {unknown[:5]}")
        row = [values[name] for name in feature_index]
        for name, v in zip(feature_index, row, strict=True):
            t = type(v)
            if not ((t is float or t is int) and -FLOAT32_MAX <= v <= FLOAT32_MAX):
                raise _bad_number(f"{field}.{name}", v)
        return row
    if type(values) is not list:
        raise InputError(field, f"must be an array of {n_features} numbers, got {json_type(values)}")
    if len(values) != n_features:
        raise InputError(field, f"must hold exactly {n_features} numbers, got {len(values)}")
    _check_numbers(values, field)
    return values


