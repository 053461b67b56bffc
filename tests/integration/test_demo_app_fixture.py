"""The itsop-demo-web fixture behaves as documented (docs/demo-app.md) on a real systemd host:
upgrades and downgrades are real apt operations, 1.2.0 fails its health check, 1.1.1 opens an
extra port, and the maintenance flag answers 503."""

from __future__ import annotations

import json

import pytest

from tests.helpers import REPO, ansible_playbook

PLAYBOOK = REPO / "playbooks" / "demo_app.yml"

PROBE = (
    "import json,urllib.request,urllib.error\n"
    "def get(u):\n"
    "    try:\n"
    "        r=urllib.request.urlopen(u,timeout=5); return r.status, dict(r.headers)\n"
    "    except urllib.error.HTTPError as e:\n"
    "        return e.code, dict(e.headers)\n"
    "s,h=get('http://127.0.0.1:8080/health'); r,rh=get('http://127.0.0.1:8080/')\n"
    "print(json.dumps({'health':s,'root':r,'fix':rh.get('X-Itsop-Security-Fix')}))\n"
)


def probe(host) -> dict:
    return json.loads(host.exec("python3", "-c", PROBE).stdout)


def installed_version(host) -> str:
    return host.exec("dpkg-query", "-W", "-f=${Version}", "itsop-demo-web").stdout


@pytest.fixture
def inventory(testhost, tmp_path):
    return testhost.inventory(tmp_path, group="demo_web")


def test_upgrade_then_downgrade_are_real_apt_operations(testhost, inventory):
    ansible_playbook(PLAYBOOK, "-i", str(inventory), "-e", "demo_app_version=1.0.0")
    assert installed_version(testhost) == "1.0.0"
    assert probe(testhost) == {"health": 200, "root": 200, "fix": None}

    ansible_playbook(PLAYBOOK, "-i", str(inventory), "-e", "demo_app_version=1.1.0")
    assert installed_version(testhost) == "1.1.0"
    assert probe(testhost)["fix"] == "DEMO-2026-0001"

    second = ansible_playbook(PLAYBOOK, "-i", str(inventory), "-e", "demo_app_version=1.1.0")
    assert "changed=0" in second.stdout, second.stdout[-2000:]

    ansible_playbook(PLAYBOOK, "-i", str(inventory), "-e", "demo_app_version=1.0.0")
    assert installed_version(testhost) == "1.0.0"
    assert probe(testhost)["fix"] is None


def test_broken_release_fails_its_health_check(testhost, inventory):
    proc = ansible_playbook(PLAYBOOK, "-i", str(inventory), "-e", "demo_app_version=1.2.0",
                            "-e", "demo_app_health_retries=3", check=False)
    assert proc.returncode != 0
    assert "Check the health endpoint" in proc.stdout
    assert installed_version(testhost) == "1.2.0"
    assert probe(testhost)["health"] == 500


def test_extra_port_release_and_maintenance_flag(testhost, inventory):
    ansible_playbook(PLAYBOOK, "-i", str(inventory), "-e", "demo_app_version=1.1.1")
    ports = testhost.exec("ss", "-Htln").stdout
    assert ":9090" in ports and ":8080" in ports
    testhost.exec("touch", "/var/lib/itsop-demo-web/maintenance")
    assert probe(testhost) == {"health": 503, "root": 503, "fix": "DEMO-2026-0001"}
    testhost.exec("rm", "/var/lib/itsop-demo-web/maintenance")
    assert probe(testhost)["health"] == 200


def test_missing_repository_is_a_clear_error(testhost, tmp_path):
    inv = testhost.inventory(tmp_path, group="demo_web")
    proc = ansible_playbook(PLAYBOOK, "-i", str(inv), "-e", "demo_app_repo_path=/nonexistent", check=False)
    assert proc.returncode != 0
    assert "/nonexistent/Packages not found" in proc.stdout
    assert testhost.exec("test", "-e", "/etc/apt/sources.list.d/itsop-demo.list", check=False).returncode != 0
