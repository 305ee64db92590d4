"""YAML loading that remembers line numbers, so schema errors can point at the offending line.

PyYAML's plain loader forgets where values came from; this loader builds dict/list subclasses that
carry the line of every key and item. It also rejects duplicate keys, which PyYAML silently
resolves to the last one (a classic way to lose a claim's setting without noticing).
"""

from __future__ import annotations

from typing import Any

import yaml


class LineDict(dict):
    """A YAML mapping; `line` is where it starts, `lines[key]` where each key is written (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: dict[Any, int] = {}


class LineList(list):
    """A YAML sequence; `line` is where it starts, `lines[i]` where item i is written (1-based)."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.lines: list[int] = []


class DuplicateKeyError(yaml.MarkedYAMLError):
    """The same key twice in one mapping."""


class _LineLoader(yaml.SafeLoader):
    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> LineDict:
        self.flatten_mapping(node)
        mapping = LineDict(node.start_mark.line + 1)
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key in mapping:
                raise DuplicateKeyError(
                    "while constructing a mapping",
                    node.start_mark,
                    f"found duplicate key {key!r}",
                    key_node.start_mark,
                )
            mapping[key] = self.construct_object(value_node, deep=True)
            mapping.lines[key] = key_node.start_mark.line + 1
        return mapping

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LineList:
        sequence = LineList(node.start_mark.line + 1)
        for item in node.value:
            sequence.append(self.construct_object(item, deep=True))
            sequence.lines.append(item.start_mark.line + 1)
        return sequence


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    return loader.construct_mapping(node)


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    return loader.construct_sequence(node)


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def load_with_lines(text: str) -> Any:
    """Parse YAML into LineDict/LineList/scalars; raises yaml.MarkedYAMLError on bad syntax."""
    return yaml.load(text, Loader=_LineLoader)
