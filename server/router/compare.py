"""Comparing a shadow track's answer with the primary answer to the same request.

Only mirrored requests of a rollout's shadow phase pay for this, in the mirror workers, after the
primary answer has been sent. Both bodies are JSON; their leaves are compared by path, ignoring
the fields that describe the answer rather than the prediction (ids, model name and version):

- an answer with label leaves (booleans, strings, integers) is a classifier's: ``flip`` when a
  label differs, else ``same`` (its scores may move, its decisions did not);
- an answer of numbers only is a regressor's: ``value_delta`` when a value differs by more than
  5 % of the larger magnitude, else ``same``. No comparable pair (an error status, non-JSON, a different shape): ``error``.
"""

from __future__ import annotations

import json

VALUE_TOLERANCE = 0.05
IGNORED_KEYS = frozenset({"request_id", "requestId", "id", "model_name", "model_version", "modelName",
                          "modelVersion", "parameters",
                          "name", "datatype", "shape"})  # a V2 output's own description
OUTCOMES = ("same", "flip", "value_delta", "error")


def _leaves(doc, path: str, out: dict) -> None:
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key not in IGNORED_KEYS:
                _leaves(value, f"{path}.{key}", out)
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            _leaves(value, f"{path}[{i}]", out)
    else:
        out[path] = doc


def _is_label(value) -> bool:
    return isinstance(value, bool | str | int) or value is None


def compare_answers(primary_status: int, primary: bytes, shadow_status: int, shadow: bytes) -> str:
    """One of OUTCOMES for the primary and the shadow answer of the same request."""
    if not (200 <= primary_status < 300 and 200 <= shadow_status < 300):
        return "error"
    try:
        ours, theirs = {}, {}
        _leaves(json.loads(primary), "", ours)
        _leaves(json.loads(shadow), "", theirs)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return "error"
    if ours.keys() != theirs.keys():
        return "error"
    labelled = delta = False
    for path, a in ours.items():
        b = theirs[path]
        if _is_label(a) or _is_label(b):
            labelled = True
            if a != b or type(a) is not type(b):
                return "flip"
        elif abs(a - b) > VALUE_TOLERANCE * max(abs(a), abs(b)):
            delta = True
    return "value_delta" if delta and not labelled else "same"
