"""The external-data files an ONNX model makes its runtime open, read from the protobuf wire format
with the standard library only (the runtime must not need the `onnx` package).

Only the message fields that can hold tensors are followed: model -> graphs, functions and
training graphs -> nodes -> attributes -> (sub)graphs, tensors, sparse tensors; everything else
(weights' raw bytes included) is skipped by length, so a 50 MB model parses in milliseconds."""

from __future__ import annotations

MAX_DEPTH = 64  # nested subgraphs (If/Loop bodies); far beyond any real model

# message type -> {field number: message type of that field}
_MODEL, _GRAPH, _NODE, _ATTR, _FUNC, _TRAIN, _TENSOR, _SPARSE, _ENTRY = range(9)
_CHILDREN = {
    _MODEL: {7: _GRAPH, 20: _TRAIN, 25: _FUNC},
    _TRAIN: {1: _GRAPH, 2: _GRAPH},
    _GRAPH: {1: _NODE, 5: _TENSOR, 15: _SPARSE},
    _FUNC: {7: _NODE},
    _NODE: {5: _ATTR},
    _ATTR: {5: _TENSOR, 6: _GRAPH, 10: _TENSOR, 11: _GRAPH, 22: _SPARSE, 23: _SPARSE},
    _SPARSE: {1: _TENSOR, 2: _TENSOR},
    _TENSOR: {13: _ENTRY},  # external_data: StringStringEntryProto
    _ENTRY: {},
}


def _varint(buf: memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise ValueError("truncated or malformed varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def _fields(buf: memoryview):
    """(field number, wire type, value) of one message; value is an int or a memoryview."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ValueError("length-delimited field runs past the end of its message")
            value, i = buf[i:i + n], i + n
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        if i > len(buf):
            raise ValueError("truncated field")
        yield field, wire, value


def _walk(buf: memoryview, kind: int, depth: int, found: list[str]) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"subgraphs nested deeper than {MAX_DEPTH}")
    children = _CHILDREN[kind]
    if kind == _ENTRY:
        entry = {f: bytes(v) for f, w, v in _fields(buf) if w == 2}
        if entry.get(1) == b"location":
            found.append(entry.get(2, b"").decode("utf-8", "replace"))
        return
    for field, wire, value in _fields(buf):
        if wire == 2 and field in children:
            _walk(value, children[field], depth + 1, found)


def external_data_locations(data: bytes) -> list[str]:
    """Every `location` of external tensor data in a serialized ModelProto (usually none).
    ValueError when the bytes are not a well-formed protobuf."""
    found: list[str] = []
    _walk(memoryview(data), _MODEL, 0, found)
    return found
