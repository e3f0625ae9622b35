"""The detector rollout over HTTPS: a throwaway bureau CA minted at test time signs the served hub's
certificate (for `localhost` only); an agent whose bundle carries the CA downloads and runs the new model;
one without it refuses the release (the push is answered refused, naming the reason; the old model keeps
running; a canary's refusal rolls the rollout back as in test_detector_download), and so does a client that
reaches the hub by a name the certificate does not hold. `hub serve`'s TLS settings are checked at start.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cityeye.cli import main
from edge_agent.model_fetch import ModelFetcher
from hub.releases import registry
from hub.settings import HubSettings
from protocol.bundle import DeviceBundle
from protocol.manifest import Signer
from protocol.model_release import ReleaseError
from tests.conftest import shared_file
from tests.models.test_detector_download import register_v2, running_agent, running_hub, walkers_config

pytestmark = pytest.mark.slow


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, issuer_key: ec.EllipticCurvePrivateKey,
          *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(issuer).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:  # the name agents reach the hub by; 127.0.0.1 deliberately left out (the mismatch case)
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def pem(obj: x509.Certificate | ec.EllipticCurvePrivateKey) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture
def bureau_ca(tmp_path) -> dict:
    """A bureau CA and the hub's certificate and key signed by it, as PEM files."""
    ca_key, hub_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test bureau CA")])
    ca = _cert("Test bureau CA", ca_key, ca_name, ca_key, ca=True)
    files = {"ca": tmp_path / "ca.pem", "cert": tmp_path / "hub.pem", "key": tmp_path / "hub.key"}
    files["ca"].write_bytes(pem(ca))
    files["cert"].write_bytes(pem(_cert("localhost", hub_key, ca_name, ca_key, ca=False)))
    files["key"].write_bytes(pem(hub_key))
    return files


@pytest.fixture
def tls_hub(tmp_path, bureau_ca):
    with running_hub(tmp_path, tls=(bureau_ca["cert"], bureau_ca["key"])) as served:
        assert served["base"].startswith("https://localhost:")
        yield served


def test_an_agent_trusting_the_bureau_ca_downloads_a_detector_over_https(tls_hub, bureau_ca, tmp_path):
    with running_agent(tls_hub, tmp_path, api_ca=bureau_ca["ca"].read_text()) as agent:
        v2, content = register_v2(tls_hub, agent)
        registry.deploy(tls_hub["store"], v2.release_id, ["vtest"], "admin:test")
        (answer,) = agent.wait_for("answer to the v2 push", lambda: agent.push_of(v2.release_id))
        assert answer["status"] == "accepted", answer
        tagged = agent.wait_for("event from v2", lambda: agent.events_from("coco-nanodet-v2"))
        assert tagged[0]["sha256"] == v2.sha256
        assert (agent.installed / f"{v2.sha256}.onnx").read_bytes() == content


def test_an_agent_without_the_ca_refuses_the_release_and_keeps_its_model(tls_hub, bureau_ca, tmp_path):
    store = tls_hub["store"]
    with running_agent(tls_hub, tmp_path) as agent:  # the system's trust store: the bureau's CA is not in it
        v2, _ = register_v2(tls_hub, agent)
        registry.deploy(store, v2.release_id, ["vtest"], "admin:test")
        (refused,) = agent.wait_for("answer to the v2 push", lambda: agent.push_of(v2.release_id))
        assert refused["status"] == "rejected", refused
        assert "certificate is not trusted (unable to get local issuer certificate)" in refused["error"], refused
        log = agent.log_path.read_text()
        assert "TLS: the hub's certificate is not trusted" in log and "not taken" in log
        assert "attempt 2/" not in log  # refused at once: the same certificate comes back on every try
        assert not (agent.installed / f"{v2.sha256}.onnx").exists()
        after = time.time() + 1
        agent.wait_for("events of the old model after the refusal", lambda: agent.events_from("coco-nanodet", after))
        assert not agent.events_from("coco-nanodet-v2")

    # the CA trusted, but the hub reached by an address its certificate does not name: refused, never plain HTTP
    bundle = DeviceBundle.load(tmp_path / "box.json")
    wire = registry.wire_release(store, v2)
    by_ip = tls_hub["base"].replace("localhost", "127.0.0.1")
    fetcher = ModelFetcher(by_ip, "box-dl", Signer(bundle.sign_secret), tmp_path / "r",
                           ca_pem=bureau_ca["ca"].read_text(), backoff_s=0)
    with pytest.raises(ReleaseError, match="not trusted.*mismatch"):
        fetcher.fetch(wire)
    with pytest.raises(ReleaseError, match="not https"):
        fetcher.fetch(wire.model_copy(update={"url": by_ip.replace("https", "http") + wire.url}))


def test_tls_settings_and_the_bureau_ca_are_checked_before_anything_runs(tmp_path, bureau_ca, capsys):
    with pytest.raises(ValueError, match="tls_key is required with tls_cert"):
        HubSettings(data_dir=tmp_path, tls_cert=bureau_ca["cert"])
    with pytest.raises(ValueError, match="tls_cert: .*missing.pem: no such file"):
        HubSettings(data_dir=tmp_path, tls_cert=tmp_path / "missing.pem", tls_key=bureau_ca["key"])
    with pytest.raises(ValueError, match="not a PEM certificate and its private key"):
        HubSettings(data_dir=tmp_path, tls_cert=bureau_ca["cert"], tls_key=bureau_ca["ca"])
    assert HubSettings(data_dir=tmp_path, tls_cert=bureau_ca["cert"], tls_key=bureau_ca["key"]).api_scheme == "https"
    with pytest.raises(SystemExit, match="(?s)invalid hub settings.*tls_key is required"):
        main(["hub", "serve", "--data", str(tmp_path / "h"), "--tls-cert", str(bureau_ca["cert"]), "--zmq", "none"])
    data = ["--data", str(tmp_path / "h"), "--config", str(_tls_settings(tmp_path, bureau_ca))]
    assert main(["hub", "enroll", "box-1", *data, "--api-url", "http://hub.example:8080"]) == 2
    assert "--api-url: the hub serves HTTPS" in capsys.readouterr().err
    assert main(["hub", "enroll", "box-1", *data, "--api-url", "https://hub.example:8080",
                 "--api-ca", str(bureau_ca["key"])]) == 2
    assert "api_ca" in capsys.readouterr().err
    out = tmp_path / "box-1.json"
    assert main(["hub", "enroll", "box-1", *data, "--api-url", "https://hub.example:8080",
                 "--api-ca", str(bureau_ca["ca"]), "--out", str(out)]) == 0
    assert DeviceBundle.load(out).api_ca == bureau_ca["ca"].read_text()
    # an agent given a file that is no CA stops at start, naming the option and the file
    assert main(["edge", "run", "--config", str(_camera(tmp_path)), "--bundle", str(out),
                 "--hub-ca", str(bureau_ca["key"])]) == 1
    assert f"--hub-ca {bureau_ca['key']}: expected PEM CA certificate" in capsys.readouterr().err
    assert main(["edge", "check-config", str(_camera(tmp_path)), "--bundle", str(out)]) == 0
    assert "HTTPS trusts the bundle's CA (api_ca)" in capsys.readouterr().out
    spoilt = tmp_path / "spoilt.json"
    spoilt.write_text(out.read_text().replace("-----BEGIN CERTIFICATE-----", "-----BEGIN KEY-----"))
    assert main(["edge", "check-config", str(_camera(tmp_path)), "--bundle", str(spoilt)]) == 1
    assert f"{spoilt}: api_ca: Value error, expected PEM CA certificate" in capsys.readouterr().err


def _tls_settings(tmp_path: Path, files: dict) -> Path:
    path = tmp_path / "hub.yaml"
    path.write_text(f"tls_cert: {files['cert']}\ntls_key: {files['key']}\n")
    return path


def _camera(tmp_path: Path) -> Path:
    path = tmp_path / "cam.yaml"
    path.write_text(yaml.safe_dump(walkers_config(shared_file("video/vtest.avi"))))
    return path
