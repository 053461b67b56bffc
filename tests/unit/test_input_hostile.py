"""Hostile input to the loaders of person-written documents (issue 15, classes 10 and 11).

Class 10: duplicate keys in YAML or JSON (two ``approvers:`` blocks, two ``id:`` lines) are
refused, naming the key and both lines, by every loader: change request, roster, freeze calendar,
config, identity.
Class 11: alias bombs, huge files, devices and FIFOs are refused up front, in well under a
second and with bounded memory, by the same loaders (``plugins/module_utils/safe_input.py``).

Anything that could hang or eat memory on a regression runs in a child process with a time and
memory limit, so a regression fails the test instead of the machine.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sopctl import approvals as ap
from sopctl import config as sconfig
from sopctl import policy
from sopctl.errors import EXIT_USAGE, Refusal, SopctlError
from sopctl.policy import PolicyError

from ansible_collections.itsop.change.plugins.module_utils import change_request as cr
from ansible_collections.itsop.change.plugins.module_utils import safe_input as si
from tests.helpers import COLLECTIONS, REPO

EXAMPLE = REPO / "docs" / "examples" / "change-requests" / "security-patch-1.1.0.yml"
EXAMPLE_TEXT = EXAMPLE.read_text()
SOPCTL = [sys.executable, "-m", "sopctl.cli"]
BOUNDED = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# the classic "billion laughs": 578 bytes that expand to 10^9 list items
BILLION_LAUGHS = textwrap.dedent("""\
    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
    b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
    c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
    d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
    e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
    f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
    g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
    h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
    i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
    """)


def bounded_child(code: str, timeout: float = 10, memory_mb: int = 1024) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python with an address-space limit; a hang fails by timeout."""
    prelude = textwrap.dedent(f"""\
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, ({memory_mb} << 20, {memory_mb} << 20))
        sys.path[:0] = [{str(COLLECTIONS)!r}, {str(REPO / "controller")!r}, {str(REPO)!r}]
        """)
    try:
        return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True,
                              text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running after {timeout} s (it must refuse up front):\n{code}")


def sopctl(*args: str, home: Path, env: dict[str, str] | None = None, timeout: float = 60
           ) -> subprocess.CompletedProcess[str]:
    e = dict(os.environ, SOPCTL_HOME=str(home), PYTHONPATH=str(REPO / "controller"))
    e.update(env or {})
    try:
        return subprocess.run([*SOPCTL, *args], capture_output=True, text=True, env=e, timeout=timeout,
                              cwd=home, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"sopctl {' '.join(args)} still running after {timeout} s")


def line_of(text: str, needle: str, nth: int = 1) -> int:
    """1-based line number of the nth line starting with ``needle``."""
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if line.startswith(needle)]
    return hits[nth - 1]


# --------------------------------------------------------------------------------------------
# class 10: duplicate keys

def test_change_request_with_two_approvers_blocks_is_refused_naming_key_and_both_lines(tmp_path):
    text = EXAMPLE_TEXT + "approvers:\n  it_manager: [budi]\n  users: [budi]\n  security: [budi]\n  qa: [budi]\n"
    path = tmp_path / "cr.yml"
    path.write_text(text)
    first, second = line_of(text, "approvers:"), line_of(text, "approvers:", 2)
    with pytest.raises(cr.ChangeRequestError) as info:
        cr.load_change_request(path)
    assert str(info.value) == f"change request {path}: duplicate key 'approvers' at lines {first} and {second}"


def test_change_request_with_two_id_lines_is_refused(tmp_path):
    text = EXAMPLE_TEXT.replace("id: CHG-2026-0042\n", "id: CHG-2026-0042\nid: CHG-2026-0043\n")
    path = tmp_path / "cr.yml"
    path.write_text(text)
    line = line_of(text, "id: CHG")
    with pytest.raises(cr.ChangeRequestError, match=rf"duplicate key 'id' at lines {line} and {line + 1}$"):
        cr.load_and_normalise(path)


def test_duplicate_key_inside_a_flow_mapping_is_refused(tmp_path):
    text = EXAMPLE_TEXT.replace('version: "1.1.0", service:', 'version: "1.1.0", version: "0.1", service:')
    path = tmp_path / "cr.yml"
    path.write_text(text)
    line = line_of(text, "    - {name: itsop-demo-web")
    with pytest.raises(cr.ChangeRequestError, match=rf"duplicate key 'version' at lines {line} and {line}$"):
        cr.load_change_request(path)


def test_json_change_request_with_duplicate_id_is_refused_naming_both_lines(tmp_path):
    data = yaml.safe_load(EXAMPLE_TEXT)
    text = json.dumps(data, indent=2).replace('"id": "CHG-2026-0042",',
                                              '"id": "CHG-2026-0042",\n  "id": "CHG-2026-0099",')
    path = tmp_path / "cr.json"
    path.write_text(text)
    line = line_of(text, '  "id"')
    with pytest.raises(cr.ChangeRequestError, match=rf"duplicate key 'id' at lines {line} and {line + 1}$"):
        cr.load_change_request(path)
    # the strict JSON loader says the same
    with pytest.raises(si.InputError, match=rf"^x: duplicate key 'id' at lines {line} and {line + 1}$"):
        si.load_json(text, "x")


def test_sopctl_validate_reports_the_duplicate_and_exits_2(tmp_path):
    text = EXAMPLE_TEXT + "requester: sari\n"
    path = tmp_path / "cr.yml"
    path.write_text(text)
    proc = sopctl("validate", str(path), home=tmp_path)
    assert proc.returncode == EXIT_USAGE, proc.stderr
    first, second = line_of(text, "requester:"), line_of(text, "requester:", 2)
    assert f"duplicate key 'requester' at lines {first} and {second}" in proc.stderr


@pytest.mark.parametrize("loader", ["roster", "freeze", "config", "identity"])
def test_every_policy_file_refuses_duplicate_keys(tmp_path, loader):
    if loader == "roster":
        path = tmp_path / "roster.yml"
        path.write_text("people:\n  agus: {roles: [security]}\n  sari: {roles: [it_manager]}\n"
                        "  agus: {roles: [qa]}\n")
        with pytest.raises(PolicyError, match=r"roster .*: duplicate key 'agus' at lines 2 and 4$"):
            policy.load_roster(path)
    elif loader == "freeze":
        path = tmp_path / "freeze.yml"
        path.write_text('freezes:\n  - name: Lebaran\n    start: "2027-03-05T00:00:00+07:00"\n'
                        '    end: "2027-03-15T00:00:00+07:00"\n    end: "2027-03-06T00:00:00+07:00"\n')
        with pytest.raises(PolicyError, match=r"freeze calendar .*: duplicate key 'end' at lines 4 and 5$"):
            policy.load_freezes(path)
    elif loader == "config":
        (tmp_path / "config.yml").write_text("roster: /etc/itsop/roster.yml\nroster: /tmp/mine.yml\n")
        with pytest.raises(SopctlError, match=r"config .*: duplicate key 'roster' at lines 1 and 2$") as info:
            sconfig.load_config(tmp_path)
        assert info.value.code == EXIT_USAGE
    else:
        path = tmp_path / "identity.yml"
        path.write_text("id: sari\nkey: sari.key\nid: agus\n")
        with pytest.raises(Refusal, match=r"ID-1: identity .*: duplicate key 'id' at lines 1 and 3\)$"):
            ap.load_identity(path)


def _yaml_lines(mapping: dict[str, int]) -> list[str]:
    return [f"{k}: {v}" for k, v in mapping.items()]


@BOUNDED
@given(keys=st.lists(st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True), min_size=1, max_size=12, unique=True),
       data=st.data())
def test_property_any_repeated_key_is_refused_naming_it_and_both_lines(tmp_path_factory, keys, data):
    mapping = {k: i for i, k in enumerate(keys)}
    lines = _yaml_lines(mapping)
    first = data.draw(st.integers(0, len(lines) - 1), label="first")
    at = data.draw(st.integers(first + 1, len(lines)), label="insert at")
    dup = keys[first]
    lines.insert(at, f"{dup}: 99")
    path = tmp_path_factory.mktemp("dup") / "cr.yml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(cr.ChangeRequestError) as info:
        cr.load_change_request(path)
    assert str(info.value).endswith(f"duplicate key '{dup}' at lines {first + 1} and {at + 1}")
    # the same document as JSON
    pairs = [(k, i) for i, k in enumerate(keys)]
    pairs.insert(at, (dup, 99))
    text = "{\n" + ",\n".join(f"{json.dumps(k)}: {v}" for k, v in pairs) + "\n}\n"
    with pytest.raises(si.InputError, match=rf"duplicate key '{dup}' at lines {first + 2} and {at + 2}$"):
        si.load_json(text, "j")


# --------------------------------------------------------------------------------------------
# class 11: alias bombs, size, devices, FIFOs

def test_billion_laughs_change_request_is_refused_at_the_first_alias_quickly(tmp_path):
    path = tmp_path / "bomb.yml"
    path.write_text(BILLION_LAUGHS)
    assert len(BILLION_LAUGHS.encode()) < 600
    proc = bounded_child(f"""
        import time
        from ansible_collections.itsop.change.plugins.module_utils import change_request as cr
        t = time.monotonic()
        try:
            cr.load_change_request({str(path)!r})
        except cr.ChangeRequestError as exc:
            print("REFUSED", round(time.monotonic() - t, 3), exc)
        """, timeout=15, memory_mb=1024)
    assert proc.returncode == 0, proc.stderr[-2000:]
    refused, seconds, message = proc.stdout.split(" ", 2)
    assert refused == "REFUSED" and float(seconds) < 0.5
    assert message.strip() == f"change request {path}: line 1, column 4: YAML anchors (&a) are not accepted"


def test_billion_laughs_uses_bounded_memory_in_process():
    tracemalloc.start()
    try:
        with pytest.raises(si.InputError, match=r"^bomb: line 1, column 4: YAML anchors \(&a\) are not accepted$"):
            si.load_yaml(BILLION_LAUGHS, "bomb")
        with pytest.raises(si.InputError, match=r"^bomb: line 1, column 4: YAML aliases \(\*a\) are not accepted$"):
            si.load_yaml("x: *a\n", "bomb")  # an alias without its anchor is refused as an alias
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024


@pytest.mark.parametrize(("snippet", "message"), [
    ("x: &a 1\n", r"line 1, column 4: YAML anchors \(&a\) are not accepted"),
    ("base: &b {risk: low}\nother:\n  <<: *b\n", "YAML anchors"),
    ("other:\n  <<: {risk: low}\n", r"line 2: YAML merge keys \(<<\) are not accepted"),
    ("x: " + "[" * 100 + "]" * 100 + "\n", "nested deeper than 64 levels"),
    ("x: " + "1" * 5000 + "\n", r"line 1: a value cannot be read \(Exceeds the limit"),
    ("x: 2026-13-45\n", r"line 1: a value cannot be read \(month must be in 1..12\)"),
    ("x: !!python/object:os.system {}\n", "not valid YAML"),
    ("x: 1\n---\ny: 2\n", "not valid YAML"),
])
def test_hostile_yaml_is_a_change_request_error_naming_the_file(tmp_path, snippet, message):
    path = tmp_path / "cr.yml"
    path.write_text(snippet)
    with pytest.raises(cr.ChangeRequestError, match=rf"^change request {re.escape(str(path))}: .*{message}"):
        cr.load_change_request(path)


def test_small_alias_in_a_change_request_is_refused(tmp_path):
    """Nothing in a change request needs an alias: even a harmless one is refused."""
    text = EXAMPLE_TEXT.replace("  it_manager: [sari]", "  it_manager: &managers [sari]").replace(
        "  users: [dewi]", "  users: *managers")
    path = tmp_path / "cr.yml"
    path.write_text(text)
    with pytest.raises(cr.ChangeRequestError, match=r"YAML anchors \(&managers\) are not accepted"):
        cr.load_change_request(path)


def test_ten_megabyte_change_request_is_refused_before_it_is_read(tmp_path):
    path = tmp_path / "big.yml"
    with path.open("w") as fh:
        fh.write(EXAMPLE_TEXT)
        fh.write(("# " + "x" * 1022 + "\n") * 10 * 1024)
    started = time.monotonic()
    tracemalloc.start()
    try:
        with pytest.raises(cr.ChangeRequestError) as info:
            cr.load_change_request(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 0.5
    assert peak < 1024 * 1024, "the file must not be read"
    assert str(info.value) == (f"change request {path}: {path.stat().st_size} bytes, larger than the limit of "
                               f"{cr.CHANGE_REQUEST_LIMIT} bytes")


def test_change_request_just_under_the_limit_still_loads(tmp_path):
    path = tmp_path / "padded.yml"
    pad = cr.CHANGE_REQUEST_LIMIT - len(EXAMPLE_TEXT.encode()) - 1
    path.write_text(EXAMPLE_TEXT + "#" * pad + "\n")
    assert path.stat().st_size == cr.CHANGE_REQUEST_LIMIT
    assert cr.load_and_normalise(path)["id"] == "CHG-2026-0042"


@pytest.mark.parametrize("kind", ["dev-zero", "symlink-to-dev-zero", "fifo", "directory", "dev-urandom"])
def test_devices_fifos_and_directories_are_refused_without_reading(tmp_path, kind):
    target = {"dev-zero": "/dev/zero", "dev-urandom": "/dev/urandom"}.get(kind)
    path = tmp_path / "cr.yml"
    if kind == "symlink-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path(target)
    proc = bounded_child(f"""
        from ansible_collections.itsop.change.plugins.module_utils import change_request as cr
        try:
            cr.load_change_request({str(path)!r})
        except cr.ChangeRequestError as exc:
            print(exc)
        """, timeout=10, memory_mb=512)
    assert proc.returncode == 0, proc.stderr[-2000:]
    expected = {"fifo": "a FIFO", "directory": "a directory"}.get(kind, "a character device")
    assert proc.stdout.strip() == f"change request {path}: not a regular file ({expected}); refusing to read it"


def test_sopctl_validate_dev_zero_exits_2_at_once(tmp_path):
    started = time.monotonic()
    proc = sopctl("validate", "/dev/zero", home=tmp_path, timeout=30)
    assert proc.returncode == EXIT_USAGE
    assert "change request /dev/zero: not a regular file (a character device)" in proc.stderr
    assert time.monotonic() - started < 15  # interpreter and collection start-up included


@pytest.mark.parametrize("where", ["roster", "public_key_file", "freeze", "config", "identity", "private_key"])
def test_policy_files_that_are_fifos_or_devices_are_refused_without_blocking(tmp_path, where):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    roster = tmp_path / "roster.yml"
    roster.write_text("people:\n  sari: {roles: [it_manager], public_key_file: %s}\n"
                      % ("/dev/zero" if where == "public_key_file" else "keys/none.pub"))
    ident = tmp_path / "identity.yml"
    ident.write_text(f"id: sari\nkey: {fifo}\n")
    os.chmod(ident, 0o600)
    os.chmod(fifo, 0o600)
    code = {
        "roster": f"policy.load_roster({str(fifo)!r})",
        "public_key_file": f"policy.load_roster({str(roster)!r})",
        "freeze": f"policy.load_freezes({str(fifo)!r})",
        "config": f"import os, pathlib; d = pathlib.Path({str(tmp_path)!r}) / 'home'; d.mkdir(); "
                  f"os.mkfifo(d / 'config.yml'); config.load_config(d)",
        "identity": f"approvals.load_identity(pathlib.Path({str(fifo)!r}))",
        "private_key": f"approvals.load_identity(pathlib.Path({str(ident)!r}))",
    }[where]
    proc = bounded_child(f"""
        import pathlib
        from sopctl import approvals, config, policy
        from sopctl.errors import SopctlError
        try:
            {code}
        except SopctlError as exc:
            print(exc.code, exc)
        """, timeout=15, memory_mb=1024)
    assert proc.returncode == 0, proc.stderr[-2000:]
    code_out, message = proc.stdout.strip().split(" ", 1)
    assert "not a regular file (a FIFO)" in message or "not a regular file (a character device)" in message
    assert int(code_out) == (3 if where in ("identity", "private_key") else EXIT_USAGE)  # ID-1 is a refusal


def test_large_roster_is_refused_naming_the_limit(tmp_path):
    path = tmp_path / "roster.yml"
    with path.open("w") as fh:
        fh.write("people:\n  sari: {roles: [it_manager]}\n")
        fh.write("#" * (policy.ROSTER_LIMIT + 1) + "\n")
    with pytest.raises(PolicyError, match=rf"roster {re.escape(str(path))}: \d+ bytes, larger than the limit"):
        policy.load_roster(path)


def test_file_replaced_by_another_between_check_and_open_is_refused(tmp_path, monkeypatch):
    """The file read must be the file checked: a swap after the stat is noticed by fstat."""
    good, other = tmp_path / "cr.yml", tmp_path / "other.yml"
    good.write_text(EXAMPLE_TEXT)
    other.write_text(EXAMPLE_TEXT)
    real_open = os.open

    def swapping_open(path, flags, *args):
        if os.fspath(path) == str(good):
            os.replace(other, good)
        return real_open(path, flags, *args)

    monkeypatch.setattr(si.os, "open", swapping_open)
    with pytest.raises(si.InputError, match="replaced while being opened"):
        si.read_regular_file(good, what="change request")


@BOUNDED
@given(raw=st.one_of(
    st.binary(max_size=400),
    st.text(alphabet=st.sampled_from([*"ab:- \n[]{}&*!|>'\"#%@`,?<=\t\\", "\x00", "\x1b", "\u202e"]),
            max_size=200).map(str.encode),
))
def test_property_any_bytes_give_a_mapping_or_a_change_request_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("fuzz") / "cr.yml"
    path.write_bytes(raw)
    started = time.monotonic()
    try:
        data = cr.load_change_request(path)
    except cr.ChangeRequestError as exc:
        assert str(exc).startswith(f"change request {path}: ")
    else:
        assert isinstance(data, dict)
        assert isinstance(cr.validate_change_request(data), list)
    assert time.monotonic() - started < 1


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(extra=st.dictionaries(st.from_regex(r"[a-z]{1,8}", fullmatch=True),
                             st.one_of(st.integers(), st.text(max_size=20), st.booleans()), max_size=4))
def test_property_valid_request_round_trips_through_the_strict_loader(tmp_path_factory, extra):
    data = yaml.safe_load(EXAMPLE_TEXT)
    data["reason"]["details"] = json.dumps(extra)
    path = tmp_path_factory.mktemp("rt") / "cr.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    assert cr.load_change_request(path) == cr.plain(data)
    assert cr.load_and_normalise(path)["reason"]["details"] == json.dumps(extra)


def test_demo_and_fixture_change_requests_and_rosters_still_load(tmp_path):
    from tests.fixtures.sopctl.world import World

    for name in ("security-patch-1.1.0.yml", "broken-update-1.2.0.yml"):
        cr.load_and_normalise(REPO / "docs" / "examples" / "change-requests" / name)
    world = World(tmp_path)
    assert sorted(policy.load_roster(tmp_path / "roster.yml").people) == [
        "agus", "budi", "dewi", "eko", "joko", "rina", "sari"]
    assert cr.load_and_normalise(world.cr())["window"]["timezone"] == "Asia/Jakarta"
    assert policy.load_freezes(world.freeze_file) == []
    assert sconfig.load_config(world.home).roster == tmp_path / "roster.yml"
    assert ap.load_identity(world.identity("agus")).id == "agus"
    molecule = REPO / "molecule" / "change_roles" / "change" / "CHG-2026-0601.yml"
    assert cr.load_and_normalise(molecule)["id"] == "CHG-2026-0601"


def test_dense_document_within_the_size_limit_is_refused_in_bounded_time(tmp_path):
    """131,000 list items in 256 KiB would take seconds of pure-Python parsing: the value limit stops it."""
    path = tmp_path / "dense.yml"
    path.write_text("x: [" + "1," * (cr.CHANGE_REQUEST_LIMIT // 2 - 10) + "1]\n")
    assert path.stat().st_size <= cr.CHANGE_REQUEST_LIMIT
    started = time.process_time()
    with pytest.raises(cr.ChangeRequestError, match=rf": line 1: more than {cr.CHANGE_REQUEST_MAX_VALUES} values in "
                                                    "one document; refusing to read further$"):
        cr.load_change_request(path)
    assert time.process_time() - started < 1
    with pytest.raises(si.InputError, match=f"more than {si.MAX_NODES} values"):
        si.load_yaml("x: [" + "1," * si.MAX_NODES + "1]", "roster")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_numbers_are_refused(tmp_path, value):
    path = tmp_path / "cr.yml"
    path.write_text(EXAMPLE_TEXT.replace("expected_downtime_minutes: 5", f"expected_downtime_minutes: {value}"))
    with pytest.raises(cr.ChangeRequestError, match=r"expected_downtime_minutes: must be a finite number, found "):
        cr.load_and_normalise(path)
