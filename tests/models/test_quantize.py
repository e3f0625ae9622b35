"""`cityeye models quantize` on real frames: coco-nanodet calibrated on vtest.avi's plaza at a 384x288 sub-stream,
installed in a scratch cache beside a link to the pulled float model, then resolved, run and checked against
the float model; a refused copy leaves nothing behind; bad inputs say what is wrong. Few frames, no timing:
speed belongs in bench/."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import onnx
import pytest

from cityeye.cli import main
from models.cache import cached, resolve
from tests.shared_data import shared_file

SIZE = (384, 288)


def _float_model() -> Path:
    found = cached("coco-nanodet")
    if found is None:
        pytest.skip("the default model is not cached: run ./setup.sh (it pulls coco-nanodet)")
    return found.onnx_path.parent


def _scratch_cache(folder: Path) -> Path:
    folder.mkdir()
    (folder / "coco-nanodet").symlink_to(_float_model())
    return folder


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """One CLI run, as an operator types it: 24 frames, 12 calibrate and 12 check."""
    vtest = shared_file("video/vtest.avi")
    root = _scratch_cache(tmp_path_factory.mktemp("q") / "cache")
    result = subprocess.run([sys.executable, "-m", "cityeye", "models", "quantize", "coco-nanodet", "--frames",
                             str(vtest), "--count", "24", "--detect-size", "384x288"], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "CITYEYE_MODEL_DIR": str(root)})
    return root, vtest, result


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    root = _scratch_cache(tmp_path / "cache")
    monkeypatch.setenv("CITYEYE_MODEL_DIR", str(root))
    return root


def test_the_int8_copy_resolves_carries_its_provenance_runs_and_agrees(quantized):
    from edge_agent.detect import Detector
    from models.frame_sources import read_frames
    from models.parity import check_parity
    from models.quantize import split_frames, tensors_sha256

    root, vtest, result = quantized
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for progress in ("sampling 24 frames", "calibrating coco-nanodet (minmax) on 12 frames",
                     "checking int8 against float on 12 held-out frames", "CPU per frame, 1 thread: float"):
        assert progress in out
    assert "use it with `model: coco-nanodet-int8`" in out

    installed = resolve("coco-nanodet-int8", root)  # what a camera's `model: coco-nanodet-int8` resolves
    source = resolve("coco-nanodet", root)
    derived = installed.manifest.derived
    assert derived is not None and derived.from_model == "coco-nanodet"
    assert derived.from_sha256 == source.manifest.sha256 and derived.method == "int8-static-qdq"
    assert (derived.calibration.frames, derived.calibration.method) == (12, "minmax")
    assert "int8 copy of coco-nanodet, calibrated on 12 frames" in installed.manifest.description
    assert installed.manifest.labels == source.manifest.labels
    assert sorted(p.name for p in root.iterdir()) == ["coco-nanodet", "coco-nanodet-int8"]  # no staging left

    float_detector = Detector(source.manifest, source.onnx_path, threads=1)
    calibration, held_out = split_frames(read_frames([str(vtest)], 24, size=SIZE))
    assert derived.calibration.sha256 == tensors_sha256([float_detector.prepare(f)[0] for f in calibration])
    int8_detector = Detector.load("coco-nanodet-int8", threads=1, cache_dir=root)
    graph = onnx.load(str(installed.onnx_path)).graph
    ops = Counter(n.op_type for n in graph.node)
    assert ops["QuantizeLinear"] and ops["DequantizeLinear"]
    dequantized = {out for n in graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    float_convs = [n for n in convs if not set(n.input) & dequantized]
    assert float_convs[:3] == convs[:3] and len(float_convs) == 3 + 3  # the stem and the three heads
    assert installed.manifest.max_batch == 1  # int8 runs fastest one frame at a time
    assert "car|truck|bus" in out  # vehicles compared as one class, as the edge tracks them
    report = check_parity(float_detector, int8_detector, held_out, groups=[["car", "truck", "bus"]])
    person = next(c for c in report.per_class if c.label == "person")
    assert person.reference >= 20 and person.agreement >= 0.8, report
    assert report.agreement >= 0.8 and not report.failing(0.8), report

    native = Detector.load("coco-nanodet-int8", threads=1, cache_dir=root, native_input=True)
    assert native.native_input and native.prepare(held_out[0])[0].shape == (3, 320, 416)
    assert len(native.detect(held_out[:1])[0]) > 0


def test_a_release_file_of_the_int8_copy_loads_from_the_file_alone(quantized, tmp_path, monkeypatch):
    """The hub registers and pushes one .onnx; the agent loads it with nothing beside it."""
    from edge_agent.fewshot import load_detector

    root, vtest, result = quantized
    assert result.returncode == 0, result.stderr
    monkeypatch.setenv("CITYEYE_MODEL_DIR", str(root))
    release = tmp_path / "release.onnx"
    assert main(["models", "package", "coco-nanodet-int8", "--name", "nanodet-int8-site", "--out", str(release)]) == 0
    loaded = resolve(release)
    assert loaded.manifest.name == "nanodet-int8-site" and loaded.manifest.derived is not None
    detector, operating = load_detector(release, threads=1)
    assert len(operating) == 80 and detector.manifest.derived == loaded.manifest.derived


def test_refused_when_agreement_is_below_the_minimum_and_nothing_is_left(scratch, capsys):
    vtest = shared_file("video/vtest.avi")
    code = main(["models", "quantize", "coco-nanodet", "--frames", str(vtest), "--count", "8", "--detect-size",
                 "384x288", "--min-agreement", "1.01"])  # impossible: persons are judged (>= 20 of them)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert "< minimum" in out and "not cached" in err and "--force" in err
    assert [p.name for p in scratch.iterdir()] == ["coco-nanodet"]  # not even a hidden staging folder


def test_force_caches_a_copy_that_fails_the_check(scratch, capsys):
    vtest = shared_file("video/vtest.avi")
    code = main(["models", "quantize", "coco-nanodet", "--frames", str(vtest), "--count", "8", "--min-agreement",
                 "1.01", "--force", "--name", "nanodet-q", "--method", "percentile"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "cached despite the check" in err
    manifest = resolve("nanodet-q", scratch).manifest
    assert manifest.derived is not None and manifest.derived.calibration.method == "percentile"


def test_bad_inputs_say_what_is_wrong(scratch, tmp_path, capsys):
    vtest = str(shared_file("video/vtest.avi"))

    def run(*args: str) -> tuple[int, str]:
        code = main(["models", "quantize", *args])
        return code, capsys.readouterr().err

    code, err = run("no-such-model", "--frames", vtest)
    assert code == 1 and "cityeye models pull no-such-model" in err
    code, err = run("coco-nanodet", "--frames", str(tmp_path / "missing.avi"))
    assert code == 1 and "missing.avi does not exist" in err
    junk_video = tmp_path / "junk.avi"
    junk_video.write_bytes(b"not a video" * 100)
    code, err = run("coco-nanodet", "--frames", str(junk_video))
    assert code == 1 and f"no readable frames in {junk_video}" in err
    folder = tmp_path / "frames"
    folder.mkdir()
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    code, err = run("coco-nanodet", "--frames", str(folder))
    assert code == 1 and f"skipping {folder / 'broken.jpg'}: not a readable image" in err
    assert "no readable frames in" in err
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = run("coco-nanodet", "--frames", str(empty))
    assert code == 1 and f"no readable frames in {empty}: a folder without images" in err
    code, err = run("coco-nanodet", "--frames", vtest, "--detect-size", "384by288")
    assert code == 1 and "--detect-size '384by288': expected WIDTHxHEIGHT" in err
    code, err = run("coco-nanodet", "--frames", vtest, "--detect-size", "8x8")
    assert code == 1 and "16 to 4096" in err
    code, err = run("coco-nanodet", "--frames", vtest, "--count", "8", "--name", "Not A Name")
    assert code == 1 and "cannot name the int8 model 'Not A Name'" in err
    code, err = run("coco-nanodet", "--frames", vtest, "--count", "8", "--name", "coco-nanodet")
    assert code == 1 and "cannot replace coco-nanodet itself" in err
    code, err = run("coco-nanodet", "--frames", vtest, "--min-agreement", "-0.5")
    assert code == 1 and "must be 0 or more" in err
    assert [p.name for p in scratch.iterdir()] == ["coco-nanodet"]


def test_a_corrupt_image_among_good_ones_is_skipped_with_a_warning(tmp_path, capsys):
    from models.frame_sources import read_frames

    good = shared_file("images/dog.jpg")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"junk")
    warnings: list[str] = []
    frames = read_frames([str(good), str(broken)], 4, size=SIZE, warn=warnings.append)
    assert len(frames) == 1 and frames[0].shape == (288, 384, 3)
    assert warnings == [f"skipping {broken}: not a readable image"]


def test_the_heads_found_by_walking_the_graph_are_the_three_detection_heads():
    from models.quantize import _name_nodes, head_nodes

    model = onnx.load(str(_float_model() / "model.onnx"))
    _name_nodes(model.graph)
    names = [n.name for n in model.graph.node]
    assert len(set(names)) == len(names) and all(names)
    heads = set(head_nodes(model.graph))
    ops = Counter(n.op_type for n in model.graph.node if n.name in heads)
    assert ops["Conv"] == 3 and ops["Split"] == 3 and ops["Sigmoid"] == 3
    outputs = {o.name for o in model.graph.output}
    assert outputs <= {out for n in model.graph.node if n.name in heads for out in n.output}


def test_cli_defaults_are_the_library_defaults():
    from cityeye.commands import models_quantize as cli
    from models import quantize as lib

    assert (cli.DEFAULT_FRAMES, cli.DEFAULT_METHOD, cli.DEFAULT_MIN_AGREEMENT, cli.METHODS) == (
        lib.DEFAULT_FRAMES, lib.DEFAULT_METHOD, lib.DEFAULT_MIN_AGREEMENT, lib.METHODS)


def test_help_says_when_to_use_it():
    result = subprocess.run([sys.executable, "-m", "cityeye", "models", "quantize", "--help"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0
    for words in ("int8", "VNNI", "--detect-size", "held out", "--min-agreement", "exit"):
        assert words in result.stdout
