"""Unit tests for the functional_check module: its checks run against real local things (an HTTP server on
127.0.0.1 in a thread, listening sockets, real commands, dpkg-query), through the module's own ``main``."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.itsop.change.plugins.module_utils._functional.package import version_matches
from ansible_collections.itsop.change.plugins.module_utils._functional.service import service_state, unit_name
from ansible_collections.itsop.change.plugins.modules import functional_check


def run_module(capsys, check_mode=False, **args):
    """Run the module's main() with ``args``; (exit code, result)."""
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit) as exc:
        functional_check.main()
    return exc.value.code, json.loads(capsys.readouterr().out)


def checked(capsys, checks, **args):
    code, result = run_module(capsys, checks=checks, **args)
    assert code == 0, result
    assert result["changed"] is False
    assert len(result["results"]) == len(checks)
    return result


class Handler(BaseHTTPRequestHandler):
    """/ok: 200 with a version text; /down: 503; /slow: 200 after 0.4 s; /flaky: 503 twice, then 200."""

    def do_GET(self):
        state = self.server.state
        state["hits"][self.path] = state["hits"].get(self.path, 0) + 1
        status, body = 200, b"itsop-demo-web version 1.1.0\n"
        if self.path == "/down":
            status, body = 503, b"maintenance\n"
        elif self.path == "/slow":
            time.sleep(0.4)
        elif self.path == "/flaky" and state["hits"][self.path] <= 2:
            status, body = 503, b"starting\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def web():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.state = {"hits": {}}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", server.state
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ http

def test_http_pass_with_status_latency_and_body(capsys, web):
    url, _state = web
    result = checked(capsys, [{"type": "http", "url": url + "/ok", "status": 200, "max_latency_ms": 5000,
                               "body_contains": "1.1.0"}])
    r = result["results"][0]
    assert result["passed"] is True and r["passed"] is True and r["attempts"] == 1
    assert r["type"] == "http" and r["name"] == f"http {url}/ok"
    assert r["expected"] == {"status": 200, "max_latency_ms": 5000.0, "body_contains": "1.1.0"}
    assert r["actual"]["status"] == 200 and r["actual"]["body_contains"] is True and r["actual"]["error"] is None
    assert 'body contains "1.1.0"' in r["message"] and "status 200 (expected 200)" in r["message"]


def test_http_body_missing_fails(capsys, web):
    url, _state = web
    r = checked(capsys, [{"type": "http", "url": url + "/ok", "body_contains": "1.2.0"}])["results"][0]
    assert r["passed"] is False and r["actual"]["status"] == 200 and r["actual"]["body_contains"] is False
    assert 'body does not contain "1.2.0"' in r["message"]


def test_http_wrong_status_fails_and_expected_status_passes(capsys, web):
    url, _state = web
    result = checked(capsys, [{"type": "http", "url": url + "/down"},
                              {"type": "http", "url": url + "/down", "status": 503, "body_contains": "maintenance"}])
    down, expected_down = result["results"]
    assert down["passed"] is False and down["actual"]["status"] == 503
    assert "status 503 (expected 200)" in down["message"]
    assert expected_down["passed"] is True  # the body of an error answer is read too
    assert result["passed"] is False


def test_http_latency_limit(capsys, web):
    url, _state = web
    slow, relaxed = checked(capsys, [{"type": "http", "url": url + "/slow", "max_latency_ms": 100},
                                     {"type": "http", "url": url + "/slow", "max_latency_ms": 5000}])["results"]
    assert slow["passed"] is False and slow["actual"]["status"] == 200
    assert slow["actual"]["latency_ms"] >= 400 and "(max 100.0 ms)" in slow["message"]
    assert relaxed["passed"] is True and relaxed["actual"]["latency_ms"] >= 400


def test_http_timeout_and_refused_connection_fail(capsys, web):
    url, _state = web
    slow, refused = checked(capsys, [{"type": "http", "url": url + "/slow", "timeout": 0.1},
                                     {"type": "http", "url": f"http://127.0.0.1:{free_port()}/"}])["results"]
    assert slow["passed"] is False and slow["actual"]["status"] is None and slow["actual"]["error"]
    assert refused["passed"] is False and refused["actual"]["status"] is None
    assert "error" in refused["message"] and "status none (expected 200)" in refused["message"]


def test_http_retries_until_it_passes(capsys, web):
    url, state = web
    once = checked(capsys, [{"type": "http", "url": url + "/flaky"}])["results"][0]
    assert once["passed"] is False and once["attempts"] == 1  # validate's way: one sample
    state["hits"].clear()
    r = checked(capsys, [{"type": "http", "url": url + "/flaky"}], retries=5, delay=0.05)["results"][0]
    assert r["passed"] is True and r["attempts"] == 3 and state["hits"]["/flaky"] == 3
    state["hits"].clear()
    short = checked(capsys, [{"type": "http", "url": url + "/flaky"}], retries=1, delay=0.05)["results"][0]
    assert short["passed"] is False and short["attempts"] == 2


# ------------------------------------------------------------------ port

def test_port_listening_and_closed(capsys):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        closed = free_port()
        result = checked(capsys, [{"type": "port", "port": port},
                                  {"type": "port", "port": closed, "timeout": 0.3}])
    ok, shut = result["results"]
    assert ok["passed"] is True and ok["name"] == f"port 127.0.0.1:{port}"
    assert ok["expected"] == {"host": "127.0.0.1", "port": port, "state": "listening"}
    assert shut["passed"] is False and shut["actual"]["error"] and shut["actual"]["elapsed_s"] >= 0.3
    assert f"port 127.0.0.1:{closed} does not accept connections" in shut["message"]


def test_port_that_starts_listening_after_the_first_attempt(capsys):
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    timer = threading.Timer(0.6, lambda: (listener.bind(("127.0.0.1", port)), listener.listen()))
    try:
        early = checked(capsys, [{"type": "port", "port": port, "timeout": 0.1}])["results"][0]
        assert early["passed"] is False and early["attempts"] == 1
        timer.start()
        r = checked(capsys, [{"type": "port", "port": port, "timeout": 0.1}], retries=20, delay=0.1)["results"][0]
        assert r["passed"] is True and r["attempts"] > 1
    finally:
        timer.cancel()
        timer.join()
        listener.close()


def test_port_timeout_waits_for_the_port_within_one_attempt(capsys):
    port = free_port()
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    timer = threading.Timer(0.4, lambda: (listener.bind(("127.0.0.1", port)), listener.listen()))
    timer.start()
    try:
        r = checked(capsys, [{"type": "port", "port": port}], port_timeout=5)["results"][0]
        assert r["passed"] is True and r["attempts"] == 1 and r["actual"]["elapsed_s"] >= 0.3
    finally:
        timer.cancel()
        timer.join()
        listener.close()


# ------------------------------------------------------------------ command

def test_command_rc_and_stdout(capsys):
    echo = shutil.which("echo")
    result = checked(capsys, [
        {"type": "command", "command": ["true"]},
        {"type": "command", "command": ["false"]},
        {"type": "command", "command": ["false"], "rc": 1, "name": "false fails"},
        {"type": "command", "command": [echo, "service enabled"], "stdout_contains": "enabled"},
        {"type": "command", "command": [echo, "service disabled"], "stdout_contains": "masked"},
    ])
    ok, bad, expected_one, out_ok, out_bad = result["results"]
    assert ok["passed"] is True and ok["name"] == "command true" and ok["actual"]["rc"] == 0
    assert bad["passed"] is False and bad["actual"]["rc"] == 1 and "rc 1 (expected 0)" in bad["message"]
    assert expected_one["passed"] is True and expected_one["name"] == "command false fails"
    assert out_ok["passed"] is True and out_ok["actual"]["stdout"].strip() == "service enabled"
    assert out_bad["passed"] is False and 'stdout does not contain "masked"' in out_bad["message"]
    assert result["passed"] is False


def test_command_that_does_not_exist_fails_the_check_not_the_module(capsys):
    r = checked(capsys, [{"type": "command", "command": ["/nonexistent/itsop-no-such-program"]}])["results"][0]
    assert r["passed"] is False and r["actual"]["rc"] is None and r["actual"]["error"]
    assert "error" in r["message"]


def test_check_mode_still_checks(capsys, tmp_path):
    marker = tmp_path / "ran"
    code, result = run_module(capsys, check_mode=True,
                              checks=[{"type": "command", "command": ["touch", str(marker)]}])
    assert code == 0 and result["changed"] is False and result["passed"] is True
    assert marker.exists()  # read-only by contract of the test plan: the command runs in check mode too


# ------------------------------------------------------------------ file

def test_file_exists_names_what_is_there(capsys, tmp_path):
    (tmp_path / "app.conf").write_text("x = 1\n")
    (tmp_path / "app.conf").chmod(0o640)
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    result = checked(capsys, [{"type": "file", "path": str(tmp_path / "app.conf")},
                              {"type": "file", "path": str(tmp_path)},
                              {"type": "file", "path": str(tmp_path / "link")},
                              {"type": "file", "path": str(tmp_path / "missing.conf")}])
    conf, folder, link, missing = result["results"]
    assert conf["passed"] is True and conf["name"] == f"file {tmp_path / 'app.conf'}"
    assert conf["actual"]["kind"] == "file" and conf["actual"]["mode"] == "0640" and conf["actual"]["size"] == 6
    assert folder["passed"] is True and folder["actual"]["kind"] == "directory"
    assert link["passed"] is True and link["actual"]["kind"] == "link"  # lstat: the link itself is there
    assert missing["passed"] is False and missing["actual"]["exists"] is False
    assert "does not exist" in missing["message"] and result["passed"] is False


# ------------------------------------------------------------------ package

@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="needs dpkg-query (a Debian-family host)")
def test_package_versions_from_dpkg(capsys):
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "dpkg"], capture_output=True, text=True,
                             check=True).stdout.strip()
    result = checked(capsys, [
        {"type": "package", "name": "dpkg"},
        {"type": "package", "name": "dpkg", "version": version},
        {"type": "package", "name": "dpkg", "version": "0.0.1"},
        {"type": "package", "name": "itsop-no-such-package"},
    ], package_manager="dpkg")
    anyv, exact, wrong, missing = result["results"]
    assert anyv["passed"] is True and anyv["actual"] == {"versions": [version], "manager": "dpkg"}
    assert anyv["expected"] == {"version": "any"} and anyv["name"] == "package dpkg"
    assert exact["passed"] is True
    assert wrong["passed"] is False and f"dpkg {version} (expected 0.0.1)" == wrong["message"]
    assert missing["passed"] is False
    assert missing["message"] == "itsop-no-such-package not installed (expected installed)"
    # auto chooses dpkg-query where it exists
    auto = checked(capsys, [{"type": "package", "name": "dpkg"}])["results"][0]
    assert auto["actual"]["manager"] == "dpkg" and auto["passed"] is True


def test_version_matching():
    assert version_matches("1.1.0", ["1.1.0"]) and version_matches("1.1.0", ["1.0.0", "1.1.0-1.el9"])
    assert not version_matches("1.1.0", ["1.1.01"]) and not version_matches("1.1", ["1.1.0"])
    assert not version_matches("1.1.0", [])


# ------------------------------------------------------------------ service

def test_service_state_from_systemd_properties():
    assert unit_name("itsop-demo-web") == "itsop-demo-web.service" and unit_name("ssh.socket") == "ssh.socket"
    assert service_state({"LoadState": "loaded", "ActiveState": "active", "SubState": "running"}) == "running"
    assert service_state({"LoadState": "loaded", "ActiveState": "failed"}) == "stopped"
    assert service_state({"LoadState": "loaded", "ActiveState": "inactive"}) == "stopped"
    assert service_state({"LoadState": "loaded", "ActiveState": "activating"}) == "activating"
    assert service_state({"LoadState": "not-found", "ActiveState": "inactive"}) == "missing"
    assert service_state({}) == "missing"


def test_unknown_service_passes_neither_running_nor_stopped(capsys):
    name = "itsop-no-such-unit-%d" % time.time_ns()
    result = checked(capsys, [{"type": "service", "name": name},
                              {"type": "service", "name": name, "state": "stopped"}])
    running, stopped = result["results"]
    assert running["passed"] is False and stopped["passed"] is False
    assert running["name"] == f"service {name}" and running["expected"] == {"state": "running", "enabled": None}
    assert running["actual"]["state"] in ("missing", "unknown") and f"{name}.service is" in running["message"]


# ------------------------------------------------------------------ bad input

@pytest.mark.parametrize(("checks", "args", "needle"), [
    ([{"type": "http"}], {}, "url"),
    ([{"type": "port"}], {}, "port"),
    ([{"type": "service"}], {}, "name"),
    ([{"type": "command"}], {}, "command"),
    ([{"type": "file"}], {}, "path"),
    ([{"type": "file", "path": "etc/hosts"}], {}, "path must be absolute"),
    ([{"type": "http", "url": "ftp://example.invalid/"}], {}, "url must start with http:// or https://"),
    ([{"type": "http", "url": "http://127.0.0.1/", "status": 700}], {}, "status must be an HTTP status code"),
    ([{"type": "port", "port": 70000}], {}, "port must be 1-65535"),
    ([{"type": "port", "port": 80, "timeout": 0}], {}, "timeout must be more than 0"),
    ([{"type": "package", "name": "--all"}], {}, "name must be a package name"),
    ([{"type": "command", "command": []}], {}, "command must be a non-empty argument list"),
    ([{"type": "command", "command": ["true"], "colour": "blue"}], {}, "colour"),
    ([{"type": "command", "command": ["true"]}], {"retries": -1}, "retries must be 0 or more"),
    ([{"type": "command", "command": ["true"]}], {"delay": -1}, "delay must be 0 or more"),
])
def test_bad_input_fails_clearly(capsys, checks, args, needle):
    code, result = run_module(capsys, checks=checks, **args)
    assert code == 1 and result["failed"] is True
    assert needle in result["msg"]


def test_index_of_the_bad_check_is_named(capsys):
    code, result = run_module(capsys, checks=[{"type": "command", "command": ["true"]},
                                              {"type": "port", "port": 0}])
    assert code == 1 and "checks[1] (port): port must be 1-65535 (got 0)" in result["msg"]


def test_no_checks_pass(capsys):
    code, result = run_module(capsys, checks=[])
    assert code == 0 and result["passed"] is True and result["results"] == []
