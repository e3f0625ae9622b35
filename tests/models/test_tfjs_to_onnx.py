import numpy as np
import onnxruntime as ort
import pytest

from models.tfjs_to_onnx import ConversionError, convert, convert_files, read_weights
from tests.models.tfjs_tiny import reference


def _run(model, x: np.ndarray) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_1": x})


def test_tiny_graph_matches_numpy_reference(tiny_tfjs):
    model = convert_files(tiny_tfjs)
    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    got_a, got_b = _run(model, x)
    want_a, want_b = reference(x)
    np.testing.assert_allclose(got_a, want_a, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got_b, want_b, rtol=1e-4, atol=1e-4)


def test_batch_dimension_is_dynamic(tiny_tfjs):
    model = convert_files(tiny_tfjs)
    x = np.random.default_rng(2).normal(size=(3, 3, 8, 8)).astype(np.float32)
    batched = _run(model, x)[0]
    assert batched.shape == (3, 192, 1)
    for i in range(3):
        np.testing.assert_allclose(batched[i:i + 1], _run(model, x[i:i + 1])[0], rtol=1e-5, atol=1e-5)


def test_unsupported_op_is_named(tiny_tfjs):
    import json

    model_json = json.loads(tiny_tfjs.read_text())
    model_json["modelTopology"]["node"].append({"name": "weird", "op": "Erf", "input": ["act"]})
    weights = read_weights(model_json, tiny_tfjs.parent)
    with pytest.raises(ConversionError, match="'weird'.*Erf"):
        convert(model_json, weights)


def test_truncated_weights_are_detected(tiny_tfjs):
    import json

    bin_path = tiny_tfjs.parent / "tiny.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-10])
    with pytest.raises(ConversionError, match="truncated"):
        read_weights(json.loads(tiny_tfjs.read_text()), tiny_tfjs.parent)
