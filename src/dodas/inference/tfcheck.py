"""Checking an uploaded SavedModel's graph before TensorFlow loads it: every node of
the top-level graph and of every function in the library (not only what the
serving signature reaches: the loader makes all of them callable) must be an op
of the allow-list (tfops.ALLOWED) or a call of a function of the library. The
save and restore functions the `saver_def` names may also use the checkpoint ops,
must be called by nothing else, and are removed from the stored model, so no
prediction or load can run them. TF1 SavedModels (no object graph) are refused:
their loader restores variables by running the graph's own ops."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from . import tfops


class GraphRefused(ValueError):
    """The SavedModel uses an op outside the allow-list; the message names it and where."""


def _called(node: Any) -> Iterable[str]:
    """The names a node calls through a function-valued attribute (If, While, PartitionedCall, ...)."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        if value.HasField("list"):
            yield from (f.name for f in value.list.func)


def _check_node(node: Any, where: str, library: set[str], extra: frozenset[str], bad: list[str]) -> None:
    """Add to `bad` what `node` uses outside the allow-list (its op, or an op it calls by name)."""
    allowed = tfops.ALLOWED | extra
    if node.op not in allowed and node.op not in library:
        bad.append(f"{node.op!r} (node {node.name!r} {where})")
    for name in _called(node):
        if name not in library and name not in allowed:  # a primitive op can be called as a function by name
            bad.append(f"{name!r} (called by node {node.name!r} {where})")


def _refuse(bad: list[str]) -> None:
    if bad:
        shown = "; ".join(bad[:8]) + (f"; and {len(bad) - 8} more" if len(bad) > 8 else "")
        raise GraphRefused(f"operations not allowed in an uploaded model (only operations that compute are: no "
                           f"files, Python, network or devices): {shown}")


def _checkpoint_roots(meta_graph: Any, nodes: dict[str, Any], library: set[str]) -> set[str]:
    """The functions the saver_def's save and restore nodes call, and what they call, transitively."""
    saver = meta_graph.saver_def
    names = {saver.save_tensor_name.split(":")[0], saver.restore_op_name.split(":")[0]} - {""}
    todo = [f for n in names if n in nodes for f in [nodes[n].op, *_called(nodes[n])] if f in library]
    return set(todo)


def check_and_strip(proto: Any) -> None:
    """Refuse (GraphRefused) a SavedModel proto with an op outside the allow-list, then
    remove its checkpoint functions and the nodes calling them, in place."""
    for meta_graph in proto.meta_graphs:
        if not meta_graph.HasField("object_graph_def") or not meta_graph.object_graph_def.nodes:
            raise GraphRefused("TF1 SavedModels (without an object graph) are not accepted: export the model with "
                               "TensorFlow 2 (tf.saved_model.save or Keras's model.export)")
        graph = meta_graph.graph_def
        functions = {fn.signature.name: fn for fn in graph.library.function}
        library = set(functions)
        nodes = {node.name: node for node in graph.node}
        checkpoint = _checkpoint_roots(meta_graph, nodes, library)
        todo = list(checkpoint)
        while todo:  # everything the checkpoint functions call is checkpoint code too
            for node in functions[todo.pop()].node_def:
                for name in [node.op, *_called(node)]:
                    if name in library and name not in checkpoint:
                        checkpoint.add(name)
                        todo.append(name)
        saver_nodes = {name for name, node in nodes.items()
                       if node.op in checkpoint or any(f in checkpoint for f in _called(node))}
        bad: list[str] = []
        for node in graph.node:
            if node.name not in saver_nodes:
                _check_node(node, "in the SavedModel's graph", library - checkpoint, frozenset(), bad)
        for name, fn in functions.items():
            extra = tfops.CHECKPOINT if name in checkpoint else frozenset()
            reachable = library if name in checkpoint else library - checkpoint
            for node in fn.node_def:
                _check_node(node, f"in function {name!r}", reachable, extra, bad)
        _refuse(bad)
        kept = [node for node in graph.node if node.name not in saver_nodes]
        del graph.node[:]
        graph.node.extend(kept)
        kept_fns = [fn for fn in graph.library.function if fn.signature.name not in checkpoint]
        del graph.library.function[:]
        graph.library.function.extend(kept_fns)
        meta_graph.ClearField("saver_def")


def check_savedmodel(path: Path, max_bytes: int) -> None:
    """Check the SavedModel directory `path` and rewrite its saved_model.pb without the
    checkpoint functions (GraphRefused when it is refused)."""
    from tensorflow.core.protobuf import saved_model_pb2  # lazily: imports TensorFlow's protos

    pb = path / "saved_model.pb"
    if pb.stat().st_size > max_bytes:
        raise GraphRefused(f"saved_model.pb is larger than {max_bytes} bytes")
    proto = saved_model_pb2.SavedModel()
    original = pb.read_bytes()
    try:
        proto.ParseFromString(original)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and friends: the upload is not a SavedModel
        raise GraphRefused("saved_model.pb is not a SavedModel protocol buffer") from None
    check_and_strip(proto)
    stripped = proto.SerializeToString()
    if stripped != original:  # once, at upload: a stored model is already stripped
        partial = pb.with_name(".saved_model.pb.partial")
        partial.write_bytes(stripped)
        partial.replace(pb)
