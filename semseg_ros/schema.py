"""Typed configuration from YAML: nested dataclasses with defaults, strict keys and type checks.

`load(cls, data)` builds the dataclass `cls` from a mapping: unknown keys and values of the wrong
type are `SemsegError`s that name the key path (`optim.lr: expected a number, got 'fast'`).
`apply_overrides` applies `--set a.b=value` strings (values parsed as YAML) to a mapping.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import sys
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from semseg_ros.errors import SemsegError, unknown_choice

T = TypeVar("T")


class YamlSyntaxError(SemsegError):
    """Text that is not YAML (as opposed to YAML refused for its size)."""


MAX_YAML_BYTES = 4 << 20
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
"""Bounds on a YAML text, its node count with every alias expanded (config/kitti.yaml: about 150) and its nesting."""


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_YAML_DEPTH while it composes (its composer recurses)."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _TooDeep
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


class _TooDeep(Exception):
    pass


class _RclParamsLoader(_BoundedLoader):
    """A ROS params file read as rcl reads it (rcl_yaml_param_parser/src/parse.c): unquoted scalars typed
    by rcl_scalar, quoted ones (and !!str) strings, other tags ignored, keys strings; no aliases, no empty
    scalars, one type per list; a key given twice merges (rcl adds both sections' parameters, the later value
    winning). Hand-written because nothing in Python reads a params file as rcl does: rclpy binds no rcl
    parser, and its parameter_dict_from_yaml_file types values with PyYAML (`1e-3` a string, `~` None)."""

    yaml_implicit_resolvers: dict[Any, Any] = {}  # noqa: RUF012 (PyYAML's class attribute): every scalar is a string node

    def compose_scalar_node(self, anchor: str | None) -> yaml.ScalarNode:
        explicit_str = self.peek_event().tag == "tag:yaml.org,2002:str"
        node = super().compose_scalar_node(anchor)
        node.tag = "tag:yaml.org,2002:str"  # rcl ignores tags but !!str, which makes a string
        if explicit_str and node.style is None:
            node.style = "'"
        return node

    def compose_sequence_node(self, anchor: str | None) -> yaml.SequenceNode:
        node = super().compose_sequence_node(anchor)
        node.tag = "tag:yaml.org,2002:seq"
        return node

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        node.tag = "tag:yaml.org,2002:map"
        return node

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, "rcl does not read aliases (*name): write the value out", self.peek_event().start_mark
            )
        return super().compose_node(parent, index)

    def construct_rcl_scalar(self, node: yaml.ScalarNode) -> Any:
        text = self.construct_scalar(node)
        if node.style in ("'", '"'):
            return text
        if not text:
            raise yaml.constructor.ConstructorError(None, None, "no value (rcl refuses an empty one)", node.start_mark)
        return rcl_scalar(text)

    def construct_rcl_list(self, node: yaml.SequenceNode) -> list[Any]:
        values = [self.construct_object(child, deep=True) for child in node.value]
        if len({type(value) for value in values}) > 1:
            raise yaml.constructor.ConstructorError(
                None, None, f"a list of mixed types {values!r:.60} (rcl: one type per list, e.g. 1.0 rather than 1)", node.start_mark
            )
        return values

    def construct_rcl_mapping(self, node: yaml.MappingNode) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "a key must be a name", key_node.start_mark)
            key, value = self.construct_scalar(key_node), self.construct_object(value_node, deep=True)
            mapping[key] = _merged(mapping[key], value) if isinstance(mapping.get(key), dict) and isinstance(value, dict) else value
        return mapping


_RclParamsLoader.add_constructor("tag:yaml.org,2002:str", _RclParamsLoader.construct_rcl_scalar)
_RclParamsLoader.add_constructor("tag:yaml.org,2002:seq", _RclParamsLoader.construct_rcl_list)
_RclParamsLoader.add_constructor("tag:yaml.org,2002:map", _RclParamsLoader.construct_rcl_mapping)


def _merged(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    result = dict(first)
    for key, value in second.items():
        result[key] = _merged(result[key], value) if isinstance(result.get(key), dict) and isinstance(value, dict) else value
    return result


def parse_yaml(text: str, where: str = "YAML", loader_class: type[_BoundedLoader] = _BoundedLoader) -> Any:
    """`yaml.safe_load(text)` with bounded size: at most MAX_YAML_BYTES characters and MAX_YAML_NODES
    nodes once aliases (and `<<` merges) are expanded, no recursive aliases, at most MAX_YAML_DEPTH
    levels of nesting. A "billion laughs" text of 735 bytes names 10^9 nodes: it is refused
    from its node graph (alias nodes are shared, so counting them costs only the graph's size).
    Errors: SemsegError naming `where`.
    """
    if len(text) > MAX_YAML_BYTES:
        raise SemsegError(f"{where}: {len(text)} characters of YAML, more than the {MAX_YAML_BYTES} allowed")
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, where)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from None
    except (_TooDeep, RecursionError):
        raise SemsegError(f"{where}: YAML nested more than {MAX_YAML_DEPTH} levels deep") from None
    except (ValueError, OverflowError) as exc:  # scalars PyYAML resolves but Python refuses: 2001-13-45, 5000-digit ints
        raise YamlSyntaxError(f"{where}: a value YAML cannot hold ({' '.join(str(exc).split())[:120]})") from None
    finally:
        loader.dispose()


_RCL_TRUE = frozenset("Y y yes Yes YES true True TRUE on On ON".split())
_RCL_FALSE = frozenset("N n no No NO false False FALSE off Off OFF".split())
_C_SPACE = r"[ \t\n\v\f\r]*"  # C isspace() in the C locale
_YAML_SPECIAL = {f"{sign}.{word}": float(f"{sign}inf") for sign in ("", "+", "-") for word in ("inf", "Inf", "INF")}
_YAML_SPECIAL |= dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan)


def rcl_scalar(text: str) -> bool | int | float | str:
    """An unquoted scalar of a ROS params file typed as rcl types it (rcl_yaml_param_parser, parse.c
    get_value): bool words, then a C `strtol(text, 0)` integer (hex 0x.., octal 0..), then a C `strtod`
    double (1e-3, .5, inf, nan, hex floats; out of range: not a double), else the string itself (`~`,
    `null`, `1_0` stay strings, which PyYAML reads otherwise)."""
    if text in _RCL_TRUE or text in _RCL_FALSE:
        return text in _RCL_TRUE
    integer = _c_long(text)
    if integer is not None:
        return integer
    if text in _YAML_SPECIAL:
        return _YAML_SPECIAL[text]
    double = _c_double(text)
    return text if double is None else double


def _c_long(text: str) -> int | None:
    """C strtol(text, &end, 0) when it consumes all of `text` without overflow (int64), else None."""
    match = re.fullmatch(_C_SPACE + r"([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)", text)
    if match is None or len(match.group(2)) > 24:  # more digits than any int64 has: overflow
        return None
    sign, digits = match.groups()
    value = int(digits[2:], 16) if digits[:2] in ("0x", "0X") else int(digits, 8 if digits.startswith("0") else 10)
    value = -value if sign == "-" else value
    return value if -(2**63) <= value < 2**63 else None


def _c_double(text: str) -> float | None:
    """C strtod(text, &end) when it consumes all of `text` without ERANGE (overflow, underflow), else None.
    ASCII only, as in the C locale (Python's float() also reads other digits and spaces)."""
    special = re.fullmatch(_C_SPACE + r"([+-]?)(inf|infinity|nan(\([0-9A-Za-z_]*\))?)", text, re.IGNORECASE | re.ASCII)
    if special is not None:
        return float(special.group(1) + special.group(2).split("(")[0])
    if (decimal := re.fullmatch(_C_SPACE + r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text)) is not None:
        value, mantissa = float(text), decimal.group(1)
    elif (
        hexadecimal := re.fullmatch(_C_SPACE + r"[+-]?0[xX]([0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)([pP][+-]?[0-9]+)?", text)
    ) is not None:
        try:
            value, mantissa = float.fromhex(text.strip(" \t\n\v\f\r")), hexadecimal.group(1)
        except OverflowError:
            return None
    else:
        return None
    nonzero = re.search(r"[1-9a-fA-F]", mantissa) is not None
    if math.isinf(value) or (nonzero and abs(value) < sys.float_info.min):
        return None  # ERANGE: out of a double's range, or below its normal range
    return value


def _check_expansion(root: yaml.Node, where: str) -> None:
    """Refuse a node graph whose expansion (aliases repeated, merges copied) exceeds MAX_YAML_NODES or loops."""
    size: dict[int, int] = {}
    open_nodes: set[int] = set()  # the nodes on the path from the root being expanded
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        children = (
            [n for pair in node.value for n in (pair if isinstance(pair, tuple) else (pair,))] if isinstance(node.value, list) else []
        )
        if finished:
            open_nodes.discard(id(node))
            size[id(node)] = 1 + sum(size[id(child)] for child in children)
            if size[id(node)] > MAX_YAML_NODES:
                raise SemsegError(
                    f"{where}: the YAML expands to more than {MAX_YAML_NODES} nodes through its aliases (&anchor/*alias); write it out"
                )
            continue
        if id(node) in size:
            continue
        if id(node) in open_nodes:
            raise SemsegError(f"{where}: a YAML alias refers to a node that contains it (recursive alias)")
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children)


def parse_ros_value(text: str, where: str) -> Any:
    """A `--ros-args -p name:=VALUE` value as rcl reads it (a scalar typed by rcl_scalar, or a flow list)."""
    return parse_yaml(text, where, _RclParamsLoader)


def read_yaml(path: str | Path, ros_params: bool = False) -> dict[str, Any]:
    """A YAML mapping from `path` (safe loader, bounded by `parse_yaml`), with clear errors for missing or
    malformed files. `ros_params`: read as rcl reads a ROS params file (see _RclParamsLoader)."""
    path = Path(path)
    if not path.is_file():
        raise SemsegError(f"{path}: config file not found")
    if path.stat().st_size > MAX_YAML_BYTES:
        raise SemsegError(f"{path}: {path.stat().st_size} bytes, more than the {MAX_YAML_BYTES} a YAML config may have")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SemsegError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    data = parse_yaml(text, str(path), _RclParamsLoader if ros_params else _BoundedLoader)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SemsegError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of `data` with each `dotted.key=value` override applied (value parsed as YAML)."""
    result = _deep_copy(data)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise SemsegError(f"--set {item!r}: expected key=value, e.g. --set optim.lr=0.001")
        try:
            value = parse_yaml(text, f"--set {item!r}")
        except YamlSyntaxError:
            value = text
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise SemsegError(f"--set {item!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return result


def load(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `data`, filling defaults and checking keys and types."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SemsegError(f"{where or 'config'}: expected a mapping, got {_describe(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = get_type_hints(cls)
    for key in data:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f" (known keys: {', '.join(fields)})"
            raise SemsegError(f"{_join(where, str(key))}: unknown key{hint}")
    values = {}
    for name, field in fields.items():
        path = _join(where, name)
        if name in data:
            values[name] = _convert(hints[name], data[name], path)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise SemsegError(f"{path}: required key is missing")
    return cls(**values)


def dump(config: Any) -> dict[str, Any]:
    """A plain mapping of a config dataclass (for YAML and checkpoints)."""
    return dataclasses.asdict(config)


def _convert(hint: Any, value: Any, path: str) -> Any:
    origin = get_origin(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, path)
            except SemsegError as exc:
                errors.append(str(exc))
        raise SemsegError(errors[0] if len(errors) == 1 else f"{path}: {_describe(value)} fits none of the allowed types")
    if origin is Literal:
        allowed = get_args(hint)
        if value not in allowed:
            raise unknown_choice(path, value, allowed)
        return value
    if origin in (list, tuple, Sequence, typing.Sequence):
        if not isinstance(value, list | tuple):
            hint_text = f" (a YAML list: [{value}])" if isinstance(value, str) and "," in value else ""
            raise SemsegError(f"{path}: expected a list{hint_text}, got {_describe(value)}")
        args = get_args(hint)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(args) != len(value):
                raise SemsegError(f"{path}: expected {len(args)} values, got {len(value)}")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        converted = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(converted) if origin is tuple else converted
    if origin is dict:
        if not isinstance(value, Mapping):
            raise SemsegError(f"{path}: expected a mapping, got {_describe(value)}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        return load(hint, value, path)  # type: ignore[arg-type]
    if hint is bool:
        if not isinstance(value, bool):
            raise SemsegError(f"{path}: expected true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SemsegError(f"{path}: expected an integer, got {_describe(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SemsegError(f"{path}: expected a number, got {_describe(value)}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise SemsegError(f"{path}: expected a string, got {_describe(value)}")
        return value
    raise TypeError(f"{path}: unsupported config type {hint}")


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, dict | list) else type(value).__name__


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
