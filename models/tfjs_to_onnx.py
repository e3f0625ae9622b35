"""Convert a TensorFlow.js graph model (model.json + weight shards) to ONNX without TensorFlow.

Supports the op set of convolutional detectors exported through onnx-tf (NanoDet and kin):
Conv2D, Pad/PadV2, Add/AddV2, LeakyRelu, Transpose, MaxPool, ConcatV2, ResizeBilinear, SplitV,
Sigmoid, Reshape, Identity. Subgraphs whose inputs are all constants (the SparseToDense / Where /
GatherV2 shape plumbing) are evaluated here with numpy and folded into initializers.

TF is NHWC and ONNX is NCHW: Conv2D, MaxPool and ResizeBilinear are wrapped in transposes, which
onnxruntime's optimizer cancels against the transposes the exporter already left in the graph.
The batch dimension is made dynamic so several frames run in one call.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
BATCH = "batch"

_TF_DTYPES = {"DT_FLOAT": np.float32, "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_BOOL": np.bool_}
_MANIFEST_DTYPES = {"float32": np.float32, "int32": np.int32, "float16": np.float16, "uint8": np.uint8,
                    "uint16": np.uint16, "bool": np.bool_}


class ConversionError(ValueError):
    """The model uses something this converter does not handle; the message names the node."""


def read_weights(model_json: Mapping, weights_dir: Path) -> dict[str, np.ndarray]:
    """Decode the weight shards, laid out back to back in `weightsManifest` order.

    Quantised entries (e.g. float16 stored for float32) are widened to their original dtype.
    """
    arrays: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        blob = b"".join((weights_dir / p).read_bytes() for p in group["paths"])
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization")
            stored = np.dtype(_MANIFEST_DTYPES[quant["dtype"] if quant else spec["dtype"]])
            count = int(np.prod(spec["shape"], dtype=np.int64))
            nbytes = count * stored.itemsize
            if offset + nbytes > len(blob):
                raise ConversionError(f"weight {spec['name']!r} runs past the end of the shards "
                                      f"({offset + nbytes} > {len(blob)} bytes): truncated download?")
            values = np.frombuffer(blob, dtype=stored, count=count, offset=offset).reshape(spec["shape"])
            if quant:
                if "scale" in quant:  # affine uint8/uint16 quantisation
                    values = values.astype(np.float32) * quant["scale"] + quant.get("min", 0.0)
                values = values.astype(_MANIFEST_DTYPES[quant.get("original_dtype", spec["dtype"])])
            arrays[spec["name"]] = np.array(values)
            offset += nbytes
        if offset != len(blob):
            raise ConversionError(f"weight shards hold {len(blob)} bytes but the manifest uses {offset}")
    return arrays


def _attr(node: Mapping, key: str, default=None):
    value = node.get("attr", {}).get(key)
    if value is None:
        return default
    if "list" in value:
        return [int(i) for i in value["list"].get("i", [])]
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "f" in value:
        return float(value["f"])
    if "i" in value:
        return int(value["i"])
    if "b" in value:
        return bool(value["b"])
    if "type" in value:
        return value["type"]
    return value


def _split_ref(ref: str) -> tuple[str, int]:
    """'node:1' -> ('node', 1); control inputs ('^node') are not data."""
    name, _, index = ref.partition(":")
    return name, int(index) if index else 0


@dataclass
class _Builder:
    consts: dict[str, np.ndarray]
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: dict[str, np.ndarray] = field(default_factory=dict)
    counter: int = 0

    def fresh(self, hint: str) -> str:
        self.counter += 1
        return f"{hint}__{self.counter}"

    def const(self, value: np.ndarray, hint: str = "c") -> str:
        name = self.fresh(hint)
        self.initializers[name] = np.asarray(value)
        return name

    def add(self, op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> list[str]:
        outputs = outputs or [self.fresh(op)]
        self.nodes.append(helper.make_node(op, inputs, outputs, **attrs))
        return outputs

    def value(self, ref: str) -> str:
        """ONNX tensor name for a TF reference; constants become initializers on first use."""
        name, index = _split_ref(ref)
        key = name if index == 0 else f"{name}:{index}"
        if key in self.consts and key not in self.initializers:
            self.initializers[key] = self.consts[key]
        return key

    def nhwc_to_nchw(self, x: str) -> str:
        return self.add("Transpose", [x], perm=[0, 3, 1, 2])[0]

    def nchw_to_nhwc(self, x: str, out: str) -> str:
        return self.add("Transpose", [x], [out], perm=[0, 2, 3, 1])[0]


def _tf_pads_to_onnx(paddings: np.ndarray) -> np.ndarray:
    paddings = np.asarray(paddings, dtype=np.int64).reshape(-1, 2)
    return np.concatenate([paddings[:, 0], paddings[:, 1]])


# ---- constant folding of the shape plumbing (numpy) ----

def _fold_sparse_to_dense(indices, output_shape, values, default):
    out = np.full(np.asarray(output_shape, dtype=np.int64), default, dtype=np.asarray(values).dtype)
    idx = np.asarray(indices, dtype=np.int64).reshape(-1, max(1, np.ndim(out)))
    vals = np.broadcast_to(np.asarray(values), (idx.shape[0],))
    for i, v in zip(idx, vals, strict=True):
        out[tuple(i)] = v
    return out


_FOLDERS: dict[str, Callable[..., np.ndarray]] = {
    "SparseToDense": _fold_sparse_to_dense,
    "Add": np.add,
    "AddV2": np.add,
    "Cast": lambda x: x,
    "Identity": lambda x: x,
    "Reshape": lambda x, s: np.reshape(x, np.asarray(s, dtype=np.int64)),
    "Transpose": lambda x, p: np.transpose(x, np.asarray(p)),
}


def _const_value(node: Mapping, weights: Mapping[str, np.ndarray]) -> np.ndarray:
    name = node["name"]
    dtype = _TF_DTYPES.get(_attr(node, "dtype"), np.float32)
    if name in weights:
        return np.asarray(weights[name]).astype(dtype)
    tensor = node.get("attr", {}).get("value", {}).get("tensor", {})
    shape = [int(d.get("size", 0)) for d in tensor.get("tensorShape", {}).get("dim", [])]
    for key in ("floatVal", "intVal", "int64Val", "boolVal"):
        if key in tensor:
            return np.broadcast_to(np.asarray(tensor[key], dtype=dtype), shape).copy()
    if int(np.prod(shape, dtype=np.int64)) == 0:
        return np.zeros(shape, dtype=dtype)
    raise ConversionError(f"constant {name!r} has no value in the weights or the graph")


def _fold_constants(graph_nodes: list[Mapping], weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Evaluate every node whose inputs are all constants; returns name -> value."""
    consts: dict[str, np.ndarray] = {}
    for node in graph_nodes:
        if node["op"] == "Const":
            consts[node["name"]] = _const_value(node, weights)
    changed = True
    while changed:
        changed = False
        for node in graph_nodes:
            op, name = node["op"], node["name"]
            if name in consts or op not in _FOLDERS:
                continue
            refs = [r for r in node.get("input", []) if not r.startswith("^")]
            if refs and all(_split_ref(r)[0] in consts and _split_ref(r)[1] == 0 for r in refs):
                value = _FOLDERS[op](*(consts[_split_ref(r)[0]] for r in refs))
                dtype = _TF_DTYPES.get(_attr(node, "T") or _attr(node, "DstT"))
                consts[name] = np.asarray(value, dtype=dtype) if dtype else np.asarray(value)
                changed = True
    return consts


# ---- op emitters: each takes (builder, node, input refs) and writes ONNX nodes producing node's name ----

def _emit_conv(b: _Builder, node: Mapping, refs: list[str]) -> None:
    if _attr(node, "data_format", "NHWC") != "NHWC":
        raise ConversionError(f"{node['name']}: only NHWC Conv2D is supported")
    kernel = b.consts.get(_split_ref(refs[1])[0])
    if kernel is None:
        raise ConversionError(f"{node['name']}: the filter must be a constant")
    kh, kw = kernel.shape[:2]
    strides = _attr(node, "strides", [1, 1, 1, 1])[1:3]
    dilations = _attr(node, "dilations", [1, 1, 1, 1])[1:3]
    attrs: dict = {"kernel_shape": [kh, kw], "strides": strides, "dilations": dilations}
    padding = _attr(node, "padding", "VALID")
    if padding == "SAME":
        attrs["auto_pad"] = "SAME_UPPER"
    elif padding == "EXPLICIT":
        explicit = np.asarray(_attr(node, "explicit_paddings", []), dtype=np.int64).reshape(4, 2)[1:3]
        attrs["pads"] = [int(explicit[0, 0]), int(explicit[1, 0]), int(explicit[0, 1]), int(explicit[1, 1])]
    weight = b.const(np.transpose(kernel, (3, 2, 0, 1)).astype(np.float32), "W")  # HWIO -> OIHW
    x = b.nhwc_to_nchw(b.value(refs[0]))
    y = b.add("Conv", [x, weight], **attrs)[0]
    b.nchw_to_nhwc(y, node["name"])


def _emit_maxpool(b: _Builder, node: Mapping, refs: list[str]) -> None:
    ksize = _attr(node, "ksize")[1:3]
    strides = _attr(node, "strides")[1:3]
    attrs: dict = {"kernel_shape": ksize, "strides": strides}
    if _attr(node, "padding", "VALID") == "SAME":
        attrs["auto_pad"] = "SAME_UPPER"
    x = b.nhwc_to_nchw(b.value(refs[0]))
    y = b.add("MaxPool", [x], **attrs)[0]
    b.nchw_to_nhwc(y, node["name"])


def _emit_resize(b: _Builder, node: Mapping, refs: list[str]) -> None:
    size = b.consts[_split_ref(refs[1])[0]].astype(np.int64).reshape(2)
    if _attr(node, "align_corners", False):
        mode = "align_corners"
    elif _attr(node, "half_pixel_centers", False):
        mode = "half_pixel"
    else:
        mode = "asymmetric"
    x = b.nhwc_to_nchw(b.value(refs[0]))
    shape = b.add("Shape", [x])[0]
    batch_channels = b.add("Slice", [shape, b.const(np.array([0], np.int64)), b.const(np.array([2], np.int64))])[0]
    sizes = b.add("Concat", [batch_channels, b.const(size)], axis=0)[0]
    y = b.add("Resize", [x, "", "", sizes], mode="linear", coordinate_transformation_mode=mode)[0]
    b.nchw_to_nhwc(y, node["name"])


def _emit_pad(b: _Builder, node: Mapping, refs: list[str]) -> None:
    pads = b.const(_tf_pads_to_onnx(b.consts[_split_ref(refs[1])[0]]), "pads")
    inputs = [b.value(refs[0]), pads]
    if node["op"] == "PadV2":
        inputs.append(b.const(np.asarray(b.consts[_split_ref(refs[2])[0]], np.float32).reshape(()), "pad_value"))
    b.add("Pad", inputs, [node["name"]], mode="constant")


def _emit_concat(b: _Builder, node: Mapping, refs: list[str]) -> None:
    axis = int(b.consts[_split_ref(refs[-1])[0]])
    b.add("Concat", [b.value(r) for r in refs[:-1]], [node["name"]], axis=axis)


def _emit_split(b: _Builder, node: Mapping, refs: list[str]) -> None:
    sizes = b.consts[_split_ref(refs[1])[0]].astype(np.int64)
    axis = int(b.consts[_split_ref(refs[2])[0]])
    outputs = [node["name"]] + [f"{node['name']}:{i}" for i in range(1, len(sizes))]
    b.add("Split", [b.value(refs[0]), b.const(sizes, "split")], outputs, axis=axis)


def _emit_reshape(b: _Builder, node: Mapping, refs: list[str]) -> None:
    shape = b.consts[_split_ref(refs[1])[0]].astype(np.int64).copy()
    if shape.size and shape[0] == 1:
        shape[0] = 0  # keep the input's batch size instead of hard-coding 1
    b.add("Reshape", [b.value(refs[0]), b.const(shape, "shape")], [node["name"]])


def _emit_transpose(b: _Builder, node: Mapping, refs: list[str]) -> None:
    perm = [int(p) for p in b.consts[_split_ref(refs[1])[0]]]
    b.add("Transpose", [b.value(refs[0])], [node["name"]], perm=perm)


def _emit_simple(onnx_op: str, **fixed) -> Callable[[_Builder, Mapping, list[str]], None]:
    def emit(b: _Builder, node: Mapping, refs: list[str]) -> None:
        attrs = dict(fixed)
        if onnx_op == "LeakyRelu":
            attrs["alpha"] = _attr(node, "alpha", 0.2)
        b.add(onnx_op, [b.value(r) for r in refs], [node["name"]], **attrs)

    return emit


_EMITTERS: dict[str, Callable[[_Builder, Mapping, list[str]], None]] = {
    "Conv2D": _emit_conv,
    "MaxPool": _emit_maxpool,
    "ResizeBilinear": _emit_resize,
    "Pad": _emit_pad,
    "PadV2": _emit_pad,
    "ConcatV2": _emit_concat,
    "SplitV": _emit_split,
    "Reshape": _emit_reshape,
    "Transpose": _emit_transpose,
    "Add": _emit_simple("Add"),
    "AddV2": _emit_simple("Add"),
    "LeakyRelu": _emit_simple("LeakyRelu"),
    "Sigmoid": _emit_simple("Sigmoid"),
    "Identity": _emit_simple("Identity"),
}


def convert(model_json: Mapping, weights: Mapping[str, np.ndarray],
            output_names: Mapping[str, str] | None = None) -> onnx.ModelProto:
    """Build an ONNX model from a parsed TF.js graph model and its decoded weights.

    `output_names` renames signature outputs (e.g. {"Identity:0": "cls_8"}); the input keeps a
    dynamic batch dimension.
    """
    graph_nodes = model_json["modelTopology"]["node"]
    b = _Builder(consts=_fold_constants(graph_nodes, weights))
    inputs = []
    for node in graph_nodes:
        op, name = node["op"], node["name"]
        if op == "Placeholder":
            dims = [int(d.get("size", -1)) for d in _attr(node, "shape")["shape"]["dim"]]
            shape = [BATCH] + [d if d > 0 else None for d in dims[1:]]
            inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
            continue
        if op == "Const" or name in b.consts:
            continue
        emitter = _EMITTERS.get(op)
        if emitter is None:
            raise ConversionError(f"node {name!r}: op {op} is not supported by this converter")
        emitter(b, node, [r for r in node.get("input", []) if not r.startswith("^")])

    signature = model_json.get("signature") or model_json["modelTopology"].get("signature", {})
    renames = dict(output_names or {})
    outputs = []
    for tf_name in signature.get("outputs", {}):
        src = _split_ref(tf_name)[0]
        out = renames.get(tf_name, src)
        if out != src:
            b.add("Identity", [src], [out])
        dims = [int(d.get("size", -1)) for d in signature["outputs"][tf_name]["tensorShape"]["dim"]]
        shape = [BATCH] + [d if d > 0 else None for d in dims[1:]]
        outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, shape))

    graph = helper.make_graph(
        b.nodes, "tfjs_graph", inputs, outputs,
        initializer=[numpy_helper.from_array(v, k) for k, v in b.initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cityeye.models.tfjs_to_onnx")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def convert_files(model_json_path: Path, output_names: Mapping[str, str] | None = None) -> onnx.ModelProto:
    model_json = json.loads(model_json_path.read_text())
    weights = read_weights(model_json, model_json_path.parent)
    return convert(model_json, weights, output_names)
