"""After the side effect (role rollback, twice): 1.0.0 is back with its configuration, healthy."""

import hashlib
import json
import os
from pathlib import Path

import yaml

EPHEMERAL = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])

# testinfra's podman backend (one ``podman exec`` per command) instead of the ansible backend, which
# runs ansible once per command for the containers.podman connection: the same checks, ten times faster.
testinfra_hosts = [f"podman://{platform['name']}" for platform in
                   yaml.safe_load((Path(__file__).resolve().parents[2] / "molecule.yml").read_text())["platforms"]]
CONFIG = "/etc/itsop-demo-web/config.ini"

HTTP = (
    "import json, urllib.request\n"
    "out = {}\n"
    "for path in ('/', '/health'):\n"
    "    r = urllib.request.urlopen('http://127.0.0.1:8080' + path, timeout=10)\n"
    "    out[path] = {'status': r.status, 'fix': r.headers.get('X-Itsop-Security-Fix'), 'body': r.read().decode()}\n"
    "print(json.dumps(out))\n"
)


def test_version_1_0_0_is_back_and_the_service_runs(host):
    assert host.package("itsop-demo-web").version == "1.0.0"
    service = host.service("itsop-demo-web")
    assert service.is_running and service.is_enabled
    assert not host.file("/var/lib/itsop-demo-web/maintenance").exists


def test_service_healthy_inside_the_host(host):
    answer = json.loads(host.check_output("python3 -c %s", HTTP))
    assert answer["/health"]["status"] == 200
    assert answer["/"]["status"] == 200 and "1.0.0" in answer["/"]["body"]
    assert answer["/"]["fix"] is None, "the 1.1.0 security header is still served"


def test_configuration_restored_byte_exact(host):
    original = (EPHEMERAL / "original" / "config.ini").read_bytes()  # fetched in prepare, before any change
    conf = host.file(CONFIG)
    assert conf.size == len(original) and conf.sha256sum == hashlib.sha256(original).hexdigest()
    assert conf.mode == 0o640 and conf.user == "root" and conf.group == "root"
    assert b"Selamat datang di layanan demo" in original


def test_rollback_evidence(host):
    record = json.loads((EPHEMERAL / "evidence" / "rollback" / f"{host.backend.get_hostname()}.json").read_text())
    assert record["status"] == "succeeded"
    assert record["packages_target"] == {"itsop-demo-web": "1.0.0"}
    assert record["packages_after"] == {"itsop-demo-web": "1.0.0"}
    assert record["restore"]["snapshot_id"]
