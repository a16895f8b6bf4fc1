"""Two past jobs side by side: the parameters that differ between their requests (and results), as both apps
list them under the two players. No UI toolkit here."""

from __future__ import annotations

import json
from typing import Any

from t2v.frontend.forms import LABELS

# the request's bookkeeping, not something a person chose
SKIPPED = frozenset({"mode", "idempotency_key", "callback_url"})


def shown(value: Any) -> str:
    """A value as one short line (lists joined, blocks as compact JSON, none as "default")."""
    if value is None or value == [] or value == {}:
        return "default"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True, separators=(",", ": "))
    return str(value)


def differences(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """(label, A's value, B's value) for each request field whose value differs between two jobs' requests, in
    the order the first names them (then the second's own); a field one leaves out reads as "default"."""
    a, b = a or {}, b or {}
    out = []
    for key in dict.fromkeys([*a, *b]):
        if key in SKIPPED:
            continue
        left, right = shown(a.get(key)), shown(b.get(key))
        if left != right:
            out.append((LABELS.get(key, key.replace("_", " ").capitalize()), left, right))
    return out


def differences_text(rows: list[tuple[str, str, str]], names: tuple[str, str] = ("A", "B")) -> str:
    """The differences as plain lines (``Seed: 3 | 4``), or one line saying the two requests are the same."""
    if not rows:
        return "Same parameters: the two clips were asked for the same way."
    return "\n".join(f"{label}: {names[0]} {left} | {names[1]} {right}" for label, left, right in rows)
