"""testinfra checks for the demo_app scenario: real package, real service, real HTTP."""

import json


def test_package_version(host):
    pkg = host.package("itsop-demo-web")
    assert pkg.is_installed
    assert pkg.version == "1.1.0"


def test_service_running_and_enabled(host):
    svc = host.service("itsop-demo-web")
    assert svc.is_running
    assert svc.is_enabled


def test_journald_running(host):
    assert host.service("systemd-journald").is_running


def test_http_200_and_security_header_inside_host(host):
    script = (
        "import json,urllib.request;r=urllib.request.urlopen('http://127.0.0.1:8080/');"
        "print(json.dumps({'status':r.status,'hdr':r.headers.get('X-Itsop-Security-Fix'),"
        "'body':r.read().decode()}))"
    )
    out = json.loads(host.check_output("python3 -c \"%s\"" % script))
    assert out["status"] == 200
    assert out["hdr"] == "DEMO-2026-0001"
    assert out["body"].startswith("itsop-demo-web 1.1.0")


def test_config_and_data_locations(host):
    cfg = host.file("/etc/itsop-demo-web/config.ini")
    assert cfg.is_file
    assert cfg.mode == 0o640
    assert host.file("/var/lib/itsop-demo-web/data.json").is_file
