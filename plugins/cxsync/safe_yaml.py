"""YAML for the files cxsync reads (the integrations file, the QA lists file), with aliases on a budget.

`yaml.safe_load` builds nothing dangerous, but aliases let a few hundred bytes stand for a value of millions of
elements ("billion laughs"): every later step that touches the value (validation, an error message quoting
it, a DAG doc, Airflow's serialization, the status page) pays for the whole expansion. The composed node graph
shares aliased nodes, so it is as small as the file: `load` measures the size the document would have once
expanded on that graph, and refuses a document whose aliases add more than `ALIAS_BUDGET` elements (scalars
count their characters) before any Python value is constructed or formatted. A recursive alias (`&a [*a]`)
expands without end and is refused as well.

Anchors used the ordinary way (one defaults mapping merged into a few entries) stay far below the budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

# Elements (nodes, plus characters of scalars) that aliases may add to a document beyond what the file
# spells out: a defaults block of a few hundred characters merged into a hundred entries fits; a bomb does not.
ALIAS_BUDGET = 100_000


class AliasBudgetExceeded(yaml.YAMLError):
    """The document's aliases expand past the budget (or into themselves)."""


class _BudgetLoader(yaml.SafeLoader):
    """SafeLoader that measures the expanded size of the composed document before constructing it."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        # What the file spells out is at most its length (in nodes and characters): aliases may add the budget.
        _check_expansion(node, len(self.buffer) + ALIAS_BUDGET)
        return self.construct_document(node)


def _check_expansion(root: yaml.Node, limit: int) -> None:
    """Refuse a node graph whose expanded size (nodes, plus characters of scalars) exceeds `limit`."""
    expanded: dict[int, int] = {}  # id(node) -> expanded size, once known
    on_path: set[int] = set()
    # Iterative post-order walk (a deeply nested document must not hit Python's recursion limit).
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            size = 1 + sum(expanded[id(child)] for child in _children(node))
            if size > limit:
                raise AliasBudgetExceeded(
                    f"YAML aliases expand this document past {limit:,} elements (nodes and characters), "
                    "far beyond what the file spells out: refusing it as an alias bomb. Write the values out, "
                    "or use fewer nested aliases"
                )
            expanded[key] = size
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise AliasBudgetExceeded(
                "a YAML alias refers to the node that contains it (a recursive alias expands without end)"
            )
        if isinstance(node, yaml.ScalarNode):
            expanded[key] = 1 + len(node.value)
            continue
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in expanded)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def load(text: str) -> Any:
    """The YAML document in `text`, like `yaml.safe_load`; `yaml.YAMLError` (an `AliasBudgetExceeded` among
    them) for a document that is not valid YAML or expands past the alias budget."""
    return yaml.load(text, Loader=_BudgetLoader)  # a SafeLoader subclass: builds plain data only


def load_file(path: Path) -> Any:
    """`load` of a UTF-8 file (errors are the caller's to word, with the file's name)."""
    return load(path.read_text(encoding="utf-8"))
