"""Checking an uploaded ONNX model before onnxruntime loads it: every node (in the
main graph, in the subgraphs of If/Loop/Scan, in the model's local functions) is
an operator of a standard domain ("" / ai.onnx / ai.onnx.ml) that ONNX's schemas
know, or a call of one of the model's own functions (themselves checked the same
way). Custom domains (onnxruntime's contrib ops, custom-op libraries) are refused,
and so is external data: a tensor stored "in another file" is a path the runtime
would open on the server. The model is then given to onnxruntime as bytes, so no
path of the server's is its base directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

STANDARD_DOMAINS = {"", "ai.onnx", "ai.onnx.ml"}


class OnnxRefused(ValueError):
    """The ONNX model is refused; the message names the operator or tensor and where."""


def _tensors(node: Any) -> Iterator[Any]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("sparse_tensor"):
            yield attr.sparse_tensor.values
            yield attr.sparse_tensor.indices
        for sparse in attr.sparse_tensors:
            yield sparse.values
            yield sparse.indices


def _subgraphs(node: Any) -> Iterator[Any]:
    for attr in node.attribute:
        if attr.HasField("g"):
            yield attr.g
        yield from attr.graphs


def _check_tensor(tensor: Any, where: str) -> None:
    import onnx

    if tensor.data_location == onnx.TensorProto.EXTERNAL or len(tensor.external_data):
        raise OnnxRefused(f"tensor {tensor.name!r} ({where}) is stored as external data: models whose tensors "
                          "live in other files are refused (save the model with its weights inside)")


def _check_nodes(nodes: Any, where: str, local: set[tuple[str, str]]) -> None:
    import onnx.defs

    for node in nodes:
        domain = node.domain or ""
        place = f"node {node.name or node.op_type!r} in {where}"
        if (domain, node.op_type) in local:
            pass
        elif domain not in STANDARD_DOMAINS:
            raise OnnxRefused(f"operator {domain}::{node.op_type} ({place}) is from a custom domain: only the "
                              "standard ONNX operators (domains '', ai.onnx, ai.onnx.ml) are accepted")
        elif not onnx.defs.has(node.op_type, "" if domain == "ai.onnx" else domain):
            raise OnnxRefused(f"operator {node.op_type!r} ({place}) is not a standard ONNX operator")
        for tensor in _tensors(node):
            _check_tensor(tensor, place)
        for graph in _subgraphs(node):
            _check_graph(graph, f"a subgraph of {place}", local)


def _check_graph(graph: Any, where: str, local: set[tuple[str, str]]) -> None:
    for tensor in graph.initializer:
        _check_tensor(tensor, where)
    for sparse in graph.sparse_initializer:
        _check_tensor(sparse.values, where)
        _check_tensor(sparse.indices, where)
    _check_nodes(graph.node, where, local)


def check_onnx(path: Path) -> bytes:
    """The model's bytes, once checked (OnnxRefused when refused)."""
    import onnx
    from google.protobuf.message import DecodeError

    data = path.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError):
        raise OnnxRefused(f"the onnx model does not load: {path.name} is not an ONNX protocol buffer") from None
    local = {(fn.domain, fn.name) for fn in model.functions}
    for fn in model.functions:
        if fn.domain in STANDARD_DOMAINS:
            raise OnnxRefused(f"local function {fn.name!r} claims the standard domain {fn.domain!r}")
        _check_nodes(fn.node, f"function {fn.domain}::{fn.name}", local)
    _check_graph(model.graph, "the main graph", local)
    return data
