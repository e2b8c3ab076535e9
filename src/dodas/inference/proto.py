"""TFaaS's protobuf messages (its tfaas.proto) for POST /proto and /predict/proto:

    message Row { repeated string key = 1; repeated float value = 2; string model = 3; }
    message Class { string label = 1; float probability = 2; }
    message Predictions { repeated Class prediction = 1; }

The message classes are built at run time from a descriptor (no generated code,
no protoc at install time) with the protobuf runtime TensorFlow already needs.
Field numbers follow the declaration order of TFaaS's schema as documented."""

from __future__ import annotations

from functools import lru_cache
from typing import Any


class ProtoError(ValueError):
    """The body is not a Row message."""


@lru_cache(maxsize=1)
def _classes() -> tuple[Any, Any]:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FileDescriptorProto(name="dodas_tfaas.proto", package="tfaaspb", syntax="proto3")
    T = descriptor_pb2.FieldDescriptorProto
    for name, fields in (("Row", [("key", 1, T.TYPE_STRING, T.LABEL_REPEATED, None),
                                  ("value", 2, T.TYPE_FLOAT, T.LABEL_REPEATED, None),
                                  ("model", 3, T.TYPE_STRING, T.LABEL_OPTIONAL, None)]),
                         ("Class", [("label", 1, T.TYPE_STRING, T.LABEL_OPTIONAL, None),
                                    ("probability", 2, T.TYPE_FLOAT, T.LABEL_OPTIONAL, None)]),
                         ("Predictions", [("prediction", 1, T.TYPE_MESSAGE, T.LABEL_REPEATED, ".tfaaspb.Class")])):
        msg = f.message_type.add(name=name)
        for fname, number, ftype, label, type_name in fields:
            field = msg.field.add(name=fname, number=number, type=ftype, label=label)
            if type_name:
                field.type_name = type_name
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    get = message_factory.GetMessageClass
    return get(pool.FindMessageTypeByName("tfaaspb.Row")), get(pool.FindMessageTypeByName("tfaaspb.Predictions"))


def parse_row(data: bytes) -> tuple[list[str], list[float], str]:
    """(keys, values, model) of a serialised Row."""
    from google.protobuf.message import DecodeError

    row_class, _ = _classes()
    row = row_class()
    try:
        row.ParseFromString(data)
    except DecodeError as exc:
        raise ProtoError(f"the body is not a protobuf Row: {exc}") from None
    return list(row.key), list(row.value), row.model


def predictions(pairs: list[tuple[str, float]]) -> bytes:
    """A serialised Predictions of (label, probability) pairs."""
    _, predictions_class = _classes()
    out = predictions_class()
    for label, probability in pairs:
        out.prediction.add(label=label, probability=probability)
    return out.SerializeToString()
