"""YAML a user writes, read strictly: a key written twice in one mapping is an error.

PyYAML (like the YAML 1.1 loaders it follows) keeps the last of two equal keys without a word, so
``optimizer: {lr: 0.1, lr: 0.001}`` trains at 0.001 while its author reads 0.1. ``load_yaml``
refuses it instead, naming the dotted key and both lines. Items of a list of mappings are named
by their ``name`` key when they have one (``methods.l2.weight``, as ``--set`` addresses them),
else by their index (``methods[0].weight``). Merge keys (``<<: *defaults``) are YAML's own way to
override a value and stay allowed.

    >>> load_yaml("optimizer:\\n  lr: 0.1\\n  momentum: 0.9\\n")
    {'optimizer': {'lr': 0.1, 'momentum': 0.9}}
    >>> load_yaml("optimizer:\\n  lr: 0.1\\n  lr: 0.001\\n")
    Traceback (most recent call last):
    ...
    tunelab.yaml_loader.DuplicateKeyError: key optimizer.lr is written twice (lines 2 and 3); keep one
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping holds the same key twice; ``key`` is its dotted path, ``lines`` are 1-based."""

    def __init__(self, key: str, lines: tuple[int, int]) -> None:
        self.key, self.lines = key, lines
        where = f"lines {lines[0]} and {lines[1]}" if lines[0] != lines[1] else f"both on line {lines[0]}"
        super().__init__(f"key {key} is written twice ({where}); keep one")

    def inline(self, prefix: str) -> str:
        """The message for a value given on the command line (``--set a.b={x: 1, x: 2}``): the key
        under ``prefix``, and no line numbers (there is one line).

        >>> DuplicateKeyError("x", (1, 1)).inline("methods.l2")
        'key methods.l2.x is written twice; keep one'
        """
        return f"key {_join(prefix, self.key)} is written twice; keep one"


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises ``DuplicateKeyError`` for a key written twice in a mapping."""

    def construct_document(self, node: Node) -> Any:
        # Mappings are constructed without knowing their parents: record every mapping's dotted
        # path once, from the root, so an error can name the key as a recipe path.
        self._paths = _mapping_paths(node)
        return super().construct_document(node)

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key: SafeLoader itself refuses it just below
                continue
            line = key_node.start_mark.line + 1
            if earlier is not None:
                prefix = getattr(self, "_paths", {}).get(id(node), "")
                written = key_node.value if isinstance(key_node, ScalarNode) else str(key)
                raise DuplicateKeyError(_join(prefix, written), (earlier, line))
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (``DuplicateKeyError``, a ``yaml.YAMLError``)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # a SafeLoader: builds plain data only


def _join(prefix: str, segment: str) -> str:
    if not prefix:
        return segment
    return f"{prefix}{segment}" if segment.startswith("[") else f"{prefix}.{segment}"


def _item_name(node: Node, index: int) -> str:
    """A list item's path segment: its scalar ``name`` (methods.l2), else its index ([0])."""
    if isinstance(node, MappingNode):
        names = [v.value for k, v in node.value if isinstance(k, ScalarNode) and k.value == "name"]
        if len(names) == 1 and isinstance(names[0], str) and names[0]:
            return names[0]
    return f"[{index}]"


def _mapping_paths(root: Node) -> dict[int, str]:
    """id(mapping node) -> its dotted path, in document order; each node once (aliases may loop)."""
    paths: dict[int, str] = {}
    stack: list[tuple[Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in paths:
            continue
        if isinstance(node, MappingNode):
            paths[id(node)] = path
            for key, value in reversed(node.value):  # reversed: the stack pops the first first
                segment = key.value if isinstance(key, ScalarNode) else "?"
                stack.append((value, _join(path, segment)))
        elif isinstance(node, SequenceNode):
            paths[id(node)] = path
            for i, item in reversed(list(enumerate(node.value))):
                stack.append((item, _join(path, _item_name(item, i))))
    return paths
