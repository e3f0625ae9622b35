"""The real default detector on real images: each expected object found within IoU 0.5 of a true
box read off the image by hand. Needs `cityeye models pull coco-nanodet` (README set-up) and
../shared/fixtures."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge_agent.detect import Detector
from edge_agent.geometry import iou_matrix
from models.cache import cached

# (label alternatives, true box xyxy in pixels)
DOG_JPG = [({"bicycle"}, (125, 135, 568, 415)), ({"dog"}, (133, 222, 312, 540)),
           ({"truck", "car"}, (466, 74, 695, 170))]
PERSON_JPG = [({"person"}, (190, 100, 275, 375)), ({"horse"}, (405, 138, 602, 345)),
              ({"dog"}, (65, 263, 205, 343))]
VTEST_300 = [({"person"}, (183, 158, 221, 234)), ({"person"}, (241, 160, 265, 222)),
             ({"person"}, (297, 159, 327, 229)), ({"person"}, (310, 211, 347, 296)),
             ({"person"}, (581, 162, 612, 236)), ({"person"}, (617, 165, 645, 233)),
             ({"truck", "car", "bus"}, (653, 44, 724, 97)),  # the white van
             ({"car", "truck"}, (735, 52, 768, 93))]  # the car at the right edge


@pytest.fixture(scope="module")
def detector() -> Detector:
    if cached("coco-nanodet") is None:
        pytest.fail("the default model is not cached: run ./setup.sh (it pulls coco-nanodet)")
    return Detector.load("coco-nanodet", threads=2)


@pytest.fixture(scope="module")
def native() -> Detector:
    return Detector.load("coco-nanodet", threads=2, native_input=True)


def _assert_found(detections, expected):
    names = detections.label_names()
    for labels, true_box in expected:
        ious = iou_matrix(np.array([true_box], np.float32), detections.xyxy)[0]
        matches = [(names[i], float(detections.confidence[i]), float(ious[i]))
                   for i in range(len(names)) if names[i] in labels and ious[i] >= 0.5]
        assert matches, f"no {labels} within IoU 0.5 of {true_box}; got {list(zip(names, ious.round(2)))}"


def test_dog_jpg(detector, dog_jpg):
    _assert_found(detector.detect([cv2.imread(str(dog_jpg))])[0], DOG_JPG)


def test_person_jpg(detector, person_jpg):
    _assert_found(detector.detect([cv2.imread(str(person_jpg))])[0], PERSON_JPG)


def _vtest_frame(path, index: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_vtest_frame_300(detector, vtest_avi):
    detections = detector.detect([_vtest_frame(vtest_avi, 300)])[0]
    _assert_found(detections, VTEST_300)
    persons = sum(1 for n in detections.label_names() if n == "person")
    assert persons >= 6


def test_batch_gives_the_same_as_one_by_one(dog_jpg, person_jpg, vtest_avi):
    detector = Detector.load("coco-nanodet", threads=2)
    detector.max_batch = 3  # the manifest runs it one frame per call (faster on CPU); other models batch
    frames = [cv2.imread(str(dog_jpg)), cv2.imread(str(person_jpg)), _vtest_frame(vtest_avi, 300)]
    batched = detector.detect(frames)
    assert len(batched) == 3
    for frame, together in zip(frames, batched, strict=True):
        alone = detector.detect([frame])[0]
        assert together.label_names() == alone.label_names()
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=0.5)


def test_sessions_side_by_side_give_the_same_in_order(detector, dog_jpg, person_jpg, vtest_avi):
    frames = [cv2.imread(str(dog_jpg)), cv2.imread(str(person_jpg))] + [_vtest_frame(vtest_avi, i)
                                                                         for i in (100, 300, 500)]
    two = Detector.load("coco-nanodet", sessions=2)
    assert len(two.sessions) == 2
    parallel = two.detect(frames)  # 5 frames: parts of 3 and 2 on the two sessions at once
    assert len(parallel) == len(frames)
    for got, want in zip(parallel, detector.detect(frames), strict=True):
        assert got.label_names() == want.label_names()
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.5)


def test_a_floor_adds_the_weaker_boxes_and_keeps_the_operating_ones(detector, vtest_avi):
    frame = _vtest_frame(vtest_avi, 300)
    floored = Detector.load("coco-nanodet", threads=2, floor=0.1)
    np.testing.assert_array_equal(floored.operating, detector.operating)
    strong, everything = detector.detect([frame])[0], floored.detect([frame])[0]
    assert len(everything) > len(strong)  # the tracker's second stage gets boxes from 0.1 up
    assert everything.confidence.min() >= 0.1 - 1e-6
    kept = everything.confidence >= floored.operating[everything.class_id]
    assert sorted(everything.label_names()[i] for i in np.flatnonzero(kept)) == sorted(strong.label_names())


def test_bad_image_is_refused(detector):
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        detector.detect([np.zeros((10, 10), np.uint8)])


def _ultralytics_like_onnx(path, output: np.ndarray, names: dict[int, str], imgsz=(64, 64)) -> None:
    """An ONNX whose output is a fixed prediction tensor, carrying ultralytics export metadata."""
    size = [1, 3, imgsz[0], imgsz[1]]
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
         helper.make_node("Mul", ["s", "zero"], ["z"]),
         helper.make_node("Add", ["preds", "z"], ["output0"])],
        "fixed", [helper.make_tensor_value_info("images", TensorProto.FLOAT, size)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(output.shape))],
        initializer=[helper.make_tensor("preds", TensorProto.FLOAT, output.shape, output.flatten().tolist()),
                     helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in {"names": str(names), "imgsz": str(list(imgsz)), "stride": "32",
                       "task": "detect"}.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))


def test_user_ultralytics_export_without_manifest(tmp_path):
    # YOLOv8 head [1, 4+nc, N]: one box cx=32 cy=32 w=16 h=8 class 1 in the 64x64 letterboxed input
    out = np.zeros((1, 4 + 2, 3), np.float32)
    out[0, :, 0] = [32, 32, 16, 8, 0.05, 0.9]
    path = tmp_path / "my_yolo.onnx"
    _ultralytics_like_onnx(path, out, {0: "cart", 1: "stall"})
    detector = Detector.load(path)
    assert detector.labels == ("cart", "stall")
    # a 128x64 frame letterboxes to scale 0.5 with 16 px of padding top and bottom
    detections = detector.detect([np.zeros((64, 128, 3), np.uint8)])[0]
    assert detections.label_names() == ["stall"]
    np.testing.assert_allclose(detections.xyxy, [[48, 24, 80, 40]], atol=1e-3)


def test_boxes_are_clipped_to_the_frame(tmp_path):
    out = np.zeros((1, 4 + 1, 1), np.float32)
    out[0, :, 0] = [4, 60, 40, 40, 0.9]  # spills over the left and bottom edges of the 64x64 input
    path = tmp_path / "edge.onnx"
    _ultralytics_like_onnx(path, out, {0: "thing"})
    detections = Detector.load(path).detect([np.zeros((64, 64, 3), np.uint8)])[0]
    np.testing.assert_allclose(detections.xyxy, [[0, 40, 24, 64]], atol=1e-3)


def test_user_end2end_export(tmp_path):
    out = np.zeros((1, 300, 6), np.float32)
    out[0, 0] = [8, 8, 24, 40, 0.8, 0]
    path = tmp_path / "yolo26n.onnx"
    _ultralytics_like_onnx(path, out, {0: "garbage_pile"})
    detector = Detector.load(path)
    assert detector.manifest.decoder.type == "yolo_end2end"
    detections = detector.detect([np.zeros((64, 64, 3), np.uint8)])[0]
    assert detections.label_names() == ["garbage_pile"]
    np.testing.assert_allclose(detections.xyxy, [[8, 8, 24, 40]], atol=1e-3)


def test_native_graph_at_the_exported_size_gives_the_file_s_numbers(native, vtest_avi):
    """The session's scale-based copy of the graph is the same network: a square frame is still fitted
    to 416x416 and gives the file's boxes."""
    exported = Detector.load("coco-nanodet", threads=2)
    assert native.native_input and not exported.native_input
    frame = np.ascontiguousarray(_vtest_frame(vtest_avi, 300)[:, 96:672])
    assert native.prepare(frame)[0].shape == (3, 416, 416)
    got, want = native.detect([frame])[0], exported.detect([frame])[0]
    assert got.label_names() == want.label_names()
    np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.01)


def test_sub_stream_frame_runs_at_its_own_aspect(native, vtest_avi):
    """A 384x288 sub-stream frame runs at 416x320 (not stretched to 416x416) and still finds the
    people, boxes in the frame's own pixels; mixed sizes in one batch give what they give alone."""
    full = _vtest_frame(vtest_avi, 300)
    sub = cv2.resize(full, (384, 288), interpolation=cv2.INTER_AREA)
    assert native.prepare(sub)[0].shape == (3, 320, 416)
    assert native.prepare(full)[0].shape == (3, 320, 416)
    wide = cv2.resize(full, (640, 360), interpolation=cv2.INTER_AREA)
    assert native.prepare(wide)[0].shape == (3, 256, 416)  # 416x234 rounded up to the 32 stride
    found = native.detect([sub])[0]
    people = [(labels, tuple(v / 2 for v in box)) for labels, box in VTEST_300 if labels == {"person"}]
    _assert_found(found, people)
    exported = Detector.load("coco-nanodet", threads=2).detect([sub])[0]
    count = sum(1 for n in found.label_names() if n == "person")
    assert abs(count - sum(1 for n in exported.label_names() if n == "person")) <= 2
    mixed = native.detect([sub, wide, full])
    for frame, together in zip([sub, wide, full], mixed, strict=True):
        alone = native.detect([frame])[0]
        assert together.label_names() == alone.label_names()
        np.testing.assert_allclose(together.xyxy, alone.xyxy, atol=0.5)
