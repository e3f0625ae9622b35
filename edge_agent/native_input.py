"""Let a fully convolutional detector run at a frame's own size instead of its exported one.

NanoDet's graph (converted by models/tfjs_to_onnx.py) fixes 416x416 only in its input dims and in the
FPN's Resize nodes, which name absolute output sizes. Making the input's height and width symbolic and
turning each Resize's sizes into the ratio they stand for (2 up, 1/2 down) gives the same network at any
size that is a multiple of its largest stride; at 416x416 the outputs are the same numbers. The model
file is left untouched (its sha256 stays the one pulled and verified): only the session's copy changes.
bench/edge.py measures the gain (a 4:3 stream runs at 416x320: ~0.78 of the CPU of 416x416).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def spatially_dynamic(onnx_path: Path) -> bytes | None:
    """The model with symbolic input height/width and scale-based Resize nodes, serialized; None when
    the graph does not fit that pattern (then the model runs at its exported size)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(onnx_path))
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        return None
    inferred = shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in inferred.graph.value_info}
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producers = {out: node for node in graph.node for out in node.output}
    for k, node in enumerate(graph.node):
        if node.op_type != "Resize":
            continue
        scale = _resize_ratio(node, shapes, consts, producers)
        if scale is None:
            return None
        node.name = node.name or f"resize_{k}"
        scales_name = f"{node.name}_native_scales"
        graph.initializer.append(numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), scales_name))
        del node.input[2:]
        node.input.extend([scales_name])
    for d, name in zip(dims[2:], ("height", "width"), strict=True):
        d.ClearField("dim_value")
        d.dim_param = name
    for out in graph.output:  # cell counts follow the input size
        out.type.tensor_type.ClearField("shape")
    del graph.value_info[:]  # so do the inner shapes a tool may have recorded (quantisation's pre-processing does)
    return model.SerializeToString()


def _resize_ratio(node: Any, shapes: dict[str, list[int]], consts: dict[str, np.ndarray],
                  producers: dict[str, Any]) -> float | None:
    """The uniform spatial ratio a sizes-based Resize applies at the exported size, or None."""
    if len(node.input) < 4 or not node.input[3]:
        return None
    source = shapes.get(node.input[0])
    concat = producers.get(node.input[3])
    if not source or len(source) != 4 or concat is None or concat.op_type != "Concat" or len(concat.input) != 2:
        return None
    target = consts.get(concat.input[1])
    if target is None or target.size != 2 or not source[2] or not source[3]:
        return None
    ratio_h, ratio_w = float(target[0]) / source[2], float(target[1]) / source[3]
    return ratio_h if ratio_h == ratio_w and ratio_h in (0.5, 2.0) else None


def native_size(frame_wh: tuple[int, int], model_wh: tuple[int, int], stride: int) -> tuple[int, int]:
    """The input size for a frame: fitted into the exported size keeping the frame's aspect, each side
    rounded up to a multiple of `stride` (a 4:3 frame runs at 416x320 instead of being stretched to
    416x416; objects keep the scale the model saw in training)."""
    scale = min(model_wh[0] / frame_wh[0], model_wh[1] / frame_wh[1])
    w, h = (min(limit, max(stride, -(-round(v * scale) // stride) * stride))
            for v, limit in zip(frame_wh, model_wh, strict=True))
    return w, h
