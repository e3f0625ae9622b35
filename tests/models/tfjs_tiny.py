"""A tiny TF.js graph model, written by hand, to test the converter and the pull path."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

RNG = np.random.default_rng(7)
KERNEL = RNG.normal(size=(3, 3, 3, 4)).astype(np.float16)  # HWIO, stored as float16
BIAS = RNG.normal(size=(4,)).astype(np.float16)


def _const(name: str, dtype: str = "DT_INT32") -> dict:
    return {"name": name, "op": "Const", "attr": {"dtype": {"type": dtype}}}


def tiny_graph() -> tuple[dict, bytes]:
    """input [1,3,8,8] NCHW -> NHWC -> pad 1 -> conv3x3 -> +bias -> leaky relu -> maxpool 2
    -> resize x2 (half-pixel) -> concat with itself -> split [3, 5] -> sigmoid(first) -> reshape."""
    nodes = [
        {"name": "input_1", "op": "Placeholder",
         "attr": {"shape": {"shape": {"dim": [{"size": "1"}, {"size": "3"}, {"size": "8"}, {"size": "8"}]}},
                  "dtype": {"type": "DT_FLOAT"}}},
        _const("perm"), _const("pads"), _const("kernel", "DT_FLOAT"), _const("bias", "DT_FLOAT"),
        _const("size"), _const("axis"), _const("split_sizes"), _const("split_dim"), _const("shape", "DT_INT64"),
        # shape plumbing that must fold away: SparseToDense of empty indices over a constant shape
        _const("sp_idx", "DT_INT64"), _const("sp_shape", "DT_INT64"), _const("sp_vals", "DT_INT64"),
        _const("sp_zero", "DT_INT64"),
        {"name": "sp", "op": "SparseToDense", "input": ["sp_idx", "sp_shape", "sp_vals", "sp_zero"],
         "attr": {"T": {"type": "DT_INT64"}}},
        {"name": "shape_final", "op": "AddV2", "input": ["shape", "sp"], "attr": {"T": {"type": "DT_INT64"}}},
        {"name": "nhwc", "op": "Transpose", "input": ["input_1", "perm"]},
        {"name": "padded", "op": "Pad", "input": ["nhwc", "pads"]},
        {"name": "conv", "op": "Conv2D", "input": ["padded", "kernel"],
         "attr": {"padding": {"s": "VkFMSUQ="}, "data_format": {"s": "TkhXQw=="},
                  "strides": {"list": {"i": ["1", "1", "1", "1"]}},
                  "dilations": {"list": {"i": ["1", "1", "1", "1"]}}}},
        {"name": "biased", "op": "Add", "input": ["conv", "bias"]},
        {"name": "act", "op": "LeakyRelu", "input": ["biased"], "attr": {"alpha": {"f": 0.1}}},
        {"name": "pool", "op": "MaxPool", "input": ["act"],
         "attr": {"ksize": {"list": {"i": ["1", "2", "2", "1"]}}, "strides": {"list": {"i": ["1", "2", "2", "1"]}},
                  "padding": {"s": "VkFMSUQ="}, "data_format": {"s": "TkhXQw=="}}},
        {"name": "up", "op": "ResizeBilinear", "input": ["pool", "size"],
         "attr": {"half_pixel_centers": {"b": True}, "align_corners": {"b": False}}},
        {"name": "cat", "op": "ConcatV2", "input": ["up", "up", "axis"]},
        {"name": "split", "op": "SplitV", "input": ["cat", "split_sizes", "split_dim"],
         "attr": {"num_split": {"i": "2"}}},
        {"name": "sig", "op": "Sigmoid", "input": ["split"]},
        {"name": "flat_a", "op": "Reshape", "input": ["sig", "shape_final"]},
        {"name": "flat_b", "op": "Reshape", "input": ["split:1", "shape_final"]},
        {"name": "Identity", "op": "Identity", "input": ["flat_a"]},
        {"name": "Identity_1", "op": "Identity", "input": ["flat_b"]},
    ]
    weights = [
        ("perm", np.array([0, 2, 3, 1], np.int32), None),
        ("pads", np.array([[0, 0], [1, 1], [1, 1], [0, 0]], np.int32), None),
        ("kernel", KERNEL, "float16"),
        ("bias", BIAS, "float16"),
        ("size", np.array([8, 8], np.int32), None),
        ("axis", np.array(3, np.int32), None),
        ("split_sizes", np.array([3, 5], np.int32), None),
        ("split_dim", np.array(3, np.int32), None),
        ("shape", np.array([1, -1, 1], np.int32), None),
        ("sp_idx", np.zeros((0, 1), np.int32), None),
        ("sp_shape", np.array([3], np.int32), None),
        ("sp_vals", np.zeros(0, np.int32), None),
        ("sp_zero", np.array(0, np.int32), None),
    ]
    manifest, blob = [], b""
    for name, value, quant in weights:
        entry = {"name": name, "shape": list(value.shape), "dtype": "float32" if quant else "int32"}
        if quant:
            entry["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
        manifest.append(entry)
        blob += value.tobytes()
    outputs = {"Identity:0": {"name": "Identity:0", "dtype": "DT_FLOAT",
                              "tensorShape": {"dim": [{"size": "1"}, {"size": "192"}, {"size": "1"}]}},
               "Identity_1:0": {"name": "Identity_1:0", "dtype": "DT_FLOAT",
                                "tensorShape": {"dim": [{"size": "1"}, {"size": "320"}, {"size": "1"}]}}}
    model = {"format": "graph-model", "modelTopology": {"node": nodes},
             "signature": {"inputs": {}, "outputs": outputs},
             "weightsManifest": [{"paths": ["tiny.bin"], "weights": manifest}]}
    return model, blob


def reference(x_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same computation in plain numpy (with OpenCV's half-pixel bilinear resize)."""
    import cv2

    x = np.pad(x_nchw.transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))
    k = KERNEL.astype(np.float32)
    out = np.zeros((1, 8, 8, 4), np.float32)
    for i in range(8):
        for j in range(8):
            out[0, i, j] = np.einsum("hwc,hwco->o", x[0, i:i + 3, j:j + 3], k)
    out = out + BIAS.astype(np.float32)
    out = np.where(out > 0, out, 0.1 * out)
    pooled = out.reshape(1, 4, 2, 4, 2, 4).max(axis=(2, 4))
    up = cv2.resize(pooled[0], (8, 8), interpolation=cv2.INTER_LINEAR)[None]
    cat = np.concatenate([up, up], axis=3)
    a = 1 / (1 + np.exp(-cat[..., :3]))
    return a.reshape(1, -1, 1), cat[..., 3:].reshape(1, -1, 1)


def write_tiny_tfjs(folder: Path) -> Path:
    model, blob = tiny_graph()
    (folder / "tiny.json").write_text(json.dumps(model))
    (folder / "tiny.bin").write_bytes(blob)
    return folder / "tiny.json"


def tiny_tarball() -> bytes:
    """An npm-style package tarball holding the tiny model."""
    model, blob = tiny_graph()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("package/tiny.json", json.dumps(model).encode()), ("package/tiny.bin", blob),
                           ("package/LICENSE", b"MIT\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
