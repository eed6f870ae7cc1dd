"""Label and field selectors as the API server parses them from a query string."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_SET = re.compile(r"^\s*(!?)([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)\s*$")


def split_terms(text: str) -> list[str]:
    """Comma-separated terms, except commas inside ``in (a,b)`` parentheses."""
    terms, depth, current = [], 0, ""
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += ch
    terms.append(current)
    return [t.strip() for t in terms if t.strip()]


def label_term(term: str) -> Callable[[dict[str, str]], bool]:
    """One term of a label selector: ``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``."""
    m = _SET.match(term)
    if m:
        key, op = m.group(2), m.group(3)
        values = {v.strip() for v in m.group(4).split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    for op in ("!=", "==", "="):
        if op in term:
            key, value = (s.strip() for s in term.split(op, 1))
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
    if term.startswith("!"):
        key = term[1:].strip()
        return lambda labels: key not in labels
    return lambda labels: term in labels


def label_selector(text: str | None) -> Predicate:
    """An object predicate from ``?labelSelector=``."""
    tests = [label_term(t) for t in split_terms(text or "")]
    return lambda obj: all(t(obj.get("metadata", {}).get("labels") or {}) for t in tests)


def match_labels(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """A structured ``LabelSelector`` (matchLabels + matchExpressions) against labels; empty matches all."""
    selector, labels = selector or {}, labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if (
            (op == "In" and labels.get(key) not in values)
            or (op == "NotIn" and labels.get(key) in values)
            or (op == "Exists" and key not in labels)
            or (op == "DoesNotExist" and key in labels)
        ):
            return False
    return True


def dotted(obj: dict[str, Any], path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def field_selector(text: str | None) -> Predicate:
    """An object predicate from ``?fieldSelector=`` (``=``, ``==``, ``!=`` on dotted paths)."""
    tests: list[Predicate] = []
    for term in split_terms(text or ""):
        for op in ("!=", "==", "="):
            if op in term:
                path, value = (s.strip() for s in term.split(op, 1))
                negate = op == "!="

                def test(
                    obj: dict[str, Any], path: str = path, value: str = value, negate: bool = negate
                ) -> bool:
                    found = dotted(obj, path)
                    text = (
                        "" if found is None else str(found).lower() if isinstance(found, bool) else str(found)
                    )
                    return (text != value) if negate else (text == value)

                tests.append(test)
                break
    return lambda obj: all(t(obj) for t in tests)
