"""`cityeye hub models`: register, roll out, judge, roll back, list and stats from the hub's shell."""

from __future__ import annotations

from pathlib import Path

import pytest

from cityeye.cli import main
from hub.app import open_store
from hub.settings import HubSettings
from hub.storage import schema
from models.manifest import DecoderSpec, InputSpec, ModelManifest


def tiny_detector(path: Path, tag: str) -> Path:
    """A real (if useless) ONNX with its manifest embedded, as `cityeye models package` writes them."""
    import onnx
    from onnx import TensorProto, helper

    from models.export import package_onnx

    graph = helper.make_graph([helper.make_node("Identity", ["images"], ["out"])], "tiny",
                              [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 8, 8])])
    bare = path.with_name(f"bare-{path.name}")
    onnx.save(helper.make_model(graph), str(bare))
    manifest = ModelManifest(name="tiny", description=tag, labels=["traffic_cone"], input=InputSpec(width=8, height=8),
                             decoder=DecoderSpec(type="yolo"))
    return package_onnx(bare, manifest, path)


def test_registry_from_the_shell(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data", str(tmp_path / "hub")]
    store = open_store(HubSettings(data_dir=tmp_path / "hub"))
    store.write(lambda conn: conn.execute(schema.cameras.insert(), [
        {"camera_id": c, "device_id": "box-1", "online": True, "health": {"inference_ms": 30.0}} for c in ("a", "b")]))
    store.close()
    head = tmp_path / "cones.onnx"
    head.write_bytes(b"not really onnx: no agent could load it")
    assert main(["hub", "models", "register", str(head), "--name", "cones-v1", *data]) == 1
    assert "cityeye models package" in capsys.readouterr().err
    tiny_detector(head, "first")
    assert main(["hub", "models", "register", str(head), "--name", "cones-v1", *data]) == 0
    assert capsys.readouterr().out.startswith("release 1: cones-v1 (onnx, sha256 ")
    assert main(["hub", "models", "register", str(head), "--name", "again", *data]) == 1
    assert "already registered" in capsys.readouterr().err
    assert main(["hub", "models", "rollout", "1", "--canary", "a", *data]) == 1
    assert "run no hub release yet: deploy a first release" in capsys.readouterr().err
    assert main(["hub", "models", "deploy", "1", "--cameras", "a,b", *data]) == 0
    assert "deployed to a, b" in capsys.readouterr().out
    tiny_detector(head, "the second model")
    assert main(["hub", "models", "register", str(head), "--name", "cones-v2", *data]) == 0
    assert capsys.readouterr().out.startswith("release 2: cones-v2")
    assert main(["hub", "models", "rollout", "2", "--canary", "a", "--min-hours", "0", *data]) == 0
    assert "on canary a; 1 camera(s) follow on promotion" in capsys.readouterr().out
    assert main(["hub", "models", "judge", "1", *data]) == 0
    assert capsys.readouterr().out.startswith("wait: waiting for 0/20 reviewed cases")
    assert main(["hub", "models", "list", *data]) == 0
    assert "cones-v1" in capsys.readouterr().out
    assert main(["hub", "models", "rollback", "1", "--reason", "operator's call", *data]) == 0
    assert "rolled back: 1 camera(s) back on release 1" in capsys.readouterr().out
    assert main(["hub", "models", "rollback", "1", "--reason", "twice", *data]) == 1
    assert "already rolled back" in capsys.readouterr().err
    assert main(["hub", "models", "judge", "9", *data]) == 1
    assert "no rollout 9" in capsys.readouterr().err
    assert main(["hub", "models", "stats", *data]) == 0
    assert main(["hub", "models", "register", str(tmp_path / "x.txt"), "--name", "x", *data]) == 1
