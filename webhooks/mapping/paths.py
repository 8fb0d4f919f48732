"""Which paths of an event a JMESPath expression reads, so a reason can name the missing ones.

`when: properties.callback_requested.value == 'true'` is false for an event without that
property and for one where it is "false"; the operator needs to know which. Only paths read
from the event itself are listed (not those inside a projection's or filter's element).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

if TYPE_CHECKING:  # the stubs' name for a node of the parsed tree (a dict at run time)
    from jmespath.visitor import _TreeNode

_PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Nodes whose every child is read from the same object as the node itself.
_SAME_CONTEXT = {"comparator", "and_expression", "or_expression", "not_expression",
                 "function_expression", "multi_select_list", "multi_select_hash", "key_val_pair"}
# Nodes whose first child is read from the same object; the others from its results.
_LEFT_ONLY = {"projection", "filter_projection", "value_projection", "flatten", "pipe"}


def root_paths(parsed: ParsedResult) -> list[ParsedResult]:
    """The plain paths (`a.b[0].c`) the expression reads from the event, each compiled."""
    found: dict[str, ParsedResult] = {}
    _walk(parsed.parsed, found)
    return list(found.values())


def missing_paths(paths: list[ParsedResult], event: Any) -> list[str]:
    """The paths (from `root_paths`) that find nothing (null) in `event`."""
    missing = []
    for path in paths:
        try:
            if path.search(event) is None:
                missing.append(path.expression)
        except JMESPathError:
            missing.append(path.expression)
    return missing


def _walk(node: _TreeNode, found: dict[str, ParsedResult]) -> None:
    text = _path_text(node)
    if text is not None:
        found.setdefault(text, ParsedResult(text, node))
        return
    kind, children = node.get("type"), node.get("children") or []
    if kind in _SAME_CONTEXT:
        for child in children:
            _walk(child, found)
    elif kind in _LEFT_ONLY | {"subexpression", "index_expression"} and children:
        _walk(children[0], found)


def _path_text(node: _TreeNode) -> str | None:
    """`a.b[0]` for a chain of fields and indexes; None for anything else."""
    kind, children = node.get("type"), node.get("children") or []
    if kind == "field":
        name = str(node["value"])
        return name if _PLAIN.match(name) else json.dumps(name)
    if kind == "subexpression":
        parts = [_path_text(child) for child in children]
        return None if None in parts else ".".join(parts)  # type: ignore[arg-type]
    if kind == "index_expression" and len(children) == 2 and children[1]["type"] == "index":
        left = _path_text(children[0])
        return None if left is None else f"{left}[{children[1]['value']}]"
    return None
