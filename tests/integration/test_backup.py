"""Real backups on this machine: the modules run as their own processes, on real files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from tests.helpers import COLLECTIONS, REPO, base_env, run

MODULES = "ansible_collections.itsop.change.plugins.modules."


def module(name: str, args: dict, tmp: Path, *, user: str | None = None, check_mode: bool = False,
           diff: bool = False) -> dict:
    """Run one module exactly as Ansible does on a host (python module.py args.json)."""
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    args_file = tmp / f"args-{name}-{time.monotonic_ns()}.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    args_file.chmod(0o644)
    cmd = [sys.executable, "-m", MODULES + name, str(args_file)]
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    if user:
        # the venv's interpreter lives under /root; an unprivileged user runs the system python
        # with the venv's site-packages (ansible) and the collection on its path
        account = pwd.getpwnam(user)
        site = next(p for p in sys.path if p.endswith("site-packages") and str(REPO) in p)
        env["PYTHONPATH"] = f"{COLLECTIONS}{os.pathsep}{site}"
        cmd = ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups",
               "/usr/bin/python3", *cmd[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd="/", check=False, timeout=600)
    try:
        return json.loads(proc.stdout)
    except ValueError:
        raise AssertionError(f"{name} printed no JSON: {proc.stdout[-3000:]} {proc.stderr[-3000:]}") from None


def make_tree(root: Path) -> None:
    (root / "etc" / "app" / "conf.d").mkdir(parents=True)
    (root / "etc" / "app" / "app.conf").write_text("listen = 8080\n")
    (root / "etc" / "app" / "conf.d" / "10-extra.conf").write_text("x = 1\n" * 1000)
    secret = root / "etc" / "app" / "secret.key"
    secret.write_bytes(os.urandom(4096))
    secret.chmod(0o600)
    os.chown(secret, 1234, 2345)
    (root / "etc" / "app" / "run.sh").write_text("#!/bin/sh\nexit 0\n")
    (root / "etc" / "app" / "run.sh").chmod(0o4755)
    os.symlink("app.conf", root / "etc" / "app" / "current.conf")
    os.symlink("/nonexistent/target", root / "etc" / "app" / "dangling")
    os.link(root / "etc" / "app" / "app.conf", root / "etc" / "app" / "hardlink.conf")
    os.mkfifo(root / "etc" / "app" / "pipe")
    (root / "etc" / "app" / "sticky").mkdir()
    os.chmod(root / "etc" / "app" / "sticky", stat.S_ISVTX | 0o700)
    (root / "etc" / "app" / "empty").write_bytes(b"")
    (root / "etc" / "app" / ("long-" + "n" * 180)).write_text("long name\n")
    deep = root / "etc" / "app" / ("d" * 90) / ("e" * 90) / ("f" * 90)
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("deep\n")
    os.mkdir(os.fsencode(root / "etc" / "app") + b"/bad-\xff-name")
    (root / "etc" / "app" / "big.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    os.utime(root / "etc" / "app" / "app.conf", (1_600_000_000, 1_600_000_000))


def tree_listing(root: Path) -> dict:
    """Everything a restore must bring back, keyed by path relative to root."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            rel = os.path.relpath(path, os.fsencode(root))
            item = {"mode": stat.S_IMODE(st.st_mode), "type": stat.S_IFMT(st.st_mode),
                    "uid": st.st_uid, "gid": st.st_gid}
            if stat.S_ISLNK(st.st_mode):
                item["target"] = os.readlink(path)
            elif stat.S_ISREG(st.st_mode):
                item["sha256"] = hashlib.sha256(Path(os.fsdecode(path)).read_bytes()).hexdigest()
                item["mtime"] = int(st.st_mtime)
            out[rel] = item
    return out


@pytest.fixture
def src(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    make_tree(root)
    return root


def test_backup_restore_alternate_root_roundtrip_is_identical(tmp_path: Path, src: Path) -> None:
    store = tmp_path / "store"
    plan = module("backup_snapshot", {"paths": [str(src / "etc")], "dest": str(store), "label": "CHG-T1"},
                  tmp_path, check_mode=True)
    assert plan["changed"] is True and plan["snapshot_id"] is None
    assert plan["would_backup"]["files"] >= 8
    assert not store.exists(), "check mode must not create anything"

    snap = module("backup_snapshot", {"paths": [str(src / "etc")], "dest": str(store), "label": "CHG-T1"}, tmp_path)
    assert snap["changed"] is True, snap
    assert Path(snap["archive_path"]).is_file()
    assert hashlib.sha256(Path(snap["archive_path"]).read_bytes()).hexdigest() == snap["archive_sha256"]
    assert snap["file_count"] >= 8 and snap["totals"]["hardlinks"] == 1 and snap["totals"]["special"] == 1
    assert snap["package_manager"] == "dpkg" and snap["package_count"] > 50
    for path in (snap["archive_path"], snap["manifest_path"], snap["package_state_path"], snap["record_path"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    for path in (store, store / "CHG-T1", snap["snapshot_dir"]):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700, path
    lines = Path(snap["manifest_path"]).read_text().splitlines()
    entries = [json.loads(line) for line in lines[1:-1]]
    conf = next(e for e in entries if e["path"].endswith("/app.conf"))
    assert conf["sha256"] == hashlib.sha256(b"listen = 8080\n").hexdigest()
    assert conf["mtime"] == 1_600_000_000 and conf["mode"] == "0644"
    assert next(e for e in entries if e["path"].endswith("/current.conf"))["target"] == "app.conf"

    verify = module("backup_verify", {"snapshot_path": snap["snapshot_dir"]}, tmp_path)
    assert verify["verdict"] == "passed", verify["failures"]
    assert verify["entries_compared"] == snap["entry_count"] and verify["files_hashed"] >= snap["file_count"]

    alt = tmp_path / "alt"
    preview = module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "root": str(alt)}, tmp_path,
                     check_mode=True, diff=True)
    assert preview["changed"] is True and preview["counts"]["create"] == snap["entry_count"]
    assert "missing" in preview["diff"]["before"]
    assert not alt.exists()
    restored = module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "root": str(alt)}, tmp_path)
    assert restored["changed"] is True and restored["restored"] is True
    assert tree_listing(src) == tree_listing(alt / str(src).lstrip("/"))
    again = module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "root": str(alt)}, tmp_path)
    assert again["changed"] is False and again["counts"]["modify"] == 0

    # change and delete files in the original place, then roll back in place
    (src / "etc" / "app" / "app.conf").write_text("listen = 9090\n")
    (src / "etc" / "app" / "secret.key").unlink()
    os.chmod(src / "etc" / "app" / "run.sh", 0o700)
    back = module("backup_restore", {"snapshot_path": snap["snapshot_dir"]}, tmp_path, check_mode=True)
    assert back["counts"] == {"create": 1, "modify": 3, "unchanged": snap["entry_count"] - 4} or \
        back["counts"]["create"] == 1, back["counts"]
    modified = {m["path"] for m in back["modified"]}
    assert str(src / "etc" / "app" / "app.conf") in modified and str(src / "etc" / "app" / "run.sh") in modified
    module("backup_restore", {"snapshot_path": snap["snapshot_dir"]}, tmp_path)
    assert (src / "etc" / "app" / "app.conf").read_text() == "listen = 8080\n"
    assert os.stat(src / "etc" / "app" / "secret.key").st_uid == 1234
    assert stat.S_IMODE(os.stat(src / "etc" / "app" / "run.sh").st_mode) == 0o4755


def test_reuse_existing_is_idempotent(tmp_path: Path, src: Path) -> None:
    args = {"paths": [str(src)], "dest": str(tmp_path / "store"), "label": "CHG-T2", "reuse_existing": True}
    first = module("backup_snapshot", args, tmp_path)
    second = module("backup_snapshot", args, tmp_path)
    assert first["changed"] is True and second["changed"] is False
    assert second["snapshot_id"] == first["snapshot_id"] and second["reused"] is True


def _snapshot(tmp_path: Path, src: Path, label: str = "CHG-T3") -> dict:
    snap = module("backup_snapshot", {"paths": [str(src)], "dest": str(tmp_path / "store"), "label": label},
                  tmp_path)
    assert snap["changed"], snap
    return snap


def test_flipped_byte_in_archive_fails_verify_and_restore(tmp_path: Path, src: Path) -> None:
    snap = _snapshot(tmp_path, src)
    archive = Path(snap["archive_path"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    archive.write_bytes(bytes(data))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    verify = module("backup_verify", {"snapshot_path": snap["snapshot_dir"], "tmpdir": str(scratch)}, tmp_path)
    assert verify["failed"] is True and verify["verdict"] == "failed" and verify["archive_ok"] is False
    assert "archive" in verify["msg"] and "sha256 mismatch" in verify["msg"]
    # the extraction ran beside the re-hash; on a mismatch it is stopped and discarded, nothing compared
    assert verify["extract_ok"] is False and verify["entries_compared"] == 0
    assert verify["temp_base"] == str(scratch) and not list(scratch.iterdir())
    assert json.loads((Path(snap["snapshot_dir"]) / "verify.json").read_text())["verdict"] == "failed"
    restore = module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "root": str(tmp_path / "alt")},
                     tmp_path)
    assert restore["failed"] is True and "refusing to restore" in restore["msg"]
    assert not (tmp_path / "alt").exists()


def test_flipped_byte_with_forged_record_is_caught_by_the_restore_test(tmp_path: Path, src: Path) -> None:
    """Even when the attacker also rewrites the recorded hash, the decompression/compare step fails."""
    snap = _snapshot(tmp_path, src)
    archive = Path(snap["archive_path"])
    data = bytearray(archive.read_bytes())
    data[len(data) // 3] ^= 0x10
    archive.write_bytes(bytes(data))
    record_path = Path(snap["record_path"])
    record = json.loads(record_path.read_text())
    record["archive"]["sha256"] = hashlib.sha256(bytes(data)).hexdigest()
    record_path.write_text(json.dumps(record))
    verify = module("backup_verify", {"snapshot_path": snap["snapshot_dir"]}, tmp_path)
    assert verify["verdict"] == "failed" and verify["archive_ok"] is True, verify
    assert verify["failures"]


@pytest.mark.parametrize("damage", ["truncate", "edit-hash", "garbage-line"])
def test_damaged_manifest_fails_verify(tmp_path: Path, src: Path, damage: str) -> None:
    snap = _snapshot(tmp_path, src)
    manifest = Path(snap["manifest_path"])
    lines = manifest.read_text().splitlines(keepends=True)
    if damage == "truncate":
        manifest.write_text("".join(lines[:-3]))
    elif damage == "garbage-line":
        manifest.write_text("".join(lines[:4]) + "{not json\n" + "".join(lines[4:]))
    else:
        idx = next(i for i, line in enumerate(lines) if '"sha256"' in line)
        entry = json.loads(lines[idx])
        entry["sha256"] = "0" * 64
        lines[idx] = json.dumps(entry) + "\n"
        manifest.write_text("".join(lines))
        # forge the record too: the restore test itself must still catch the wrong hash
        record = json.loads(Path(snap["record_path"]).read_text())
        record["manifest"]["sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
        Path(snap["record_path"]).write_text(json.dumps(record))
    verify = module("backup_verify", {"snapshot_path": snap["snapshot_dir"]}, tmp_path)
    assert verify["verdict"] == "failed", verify
    if damage == "edit-hash":
        assert verify["manifest_ok"] is True and verify["mismatch_count"] == 1
        assert any("content sha256" in p for m in verify["mismatches"] for p in m["problems"])
    else:
        assert verify["manifest_ok"] is False


@pytest.fixture
def tiny_fs(tmp_path: Path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)])
    try:
        yield mnt
    finally:
        run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_is_refused_before_writing(tmp_path: Path, tiny_fs: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "random.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    result = module("backup_snapshot", {"paths": [str(data)], "dest": str(tiny_fs / "store"), "label": "CHG-T4"},
                    tmp_path)
    assert result["failed"] is True and "not enough free space" in result["msg"], result
    assert not (tiny_fs / "store" / "CHG-T4").exists() or not os.listdir(tiny_fs / "store" / "CHG-T4")


def test_disk_filling_up_mid_write_fails_cleanly(tmp_path: Path, tiny_fs: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "random.bin").write_bytes(os.urandom(5 * 1024 * 1024))
    result = module("backup_snapshot", {"paths": [str(data)], "dest": str(tiny_fs / "store"), "label": "CHG-T5",
                                        "space_check": False, "package_state": False}, tmp_path)
    assert result["failed"] is True, result
    assert "No space left" in result["msg"] or "stopped" in result["msg"] or "failed" in result["msg"]
    assert os.listdir(tiny_fs / "store" / "CHG-T5") == [], "a failed run must leave nothing behind"
    assert shutil.disk_usage(tiny_fs).used < 64 * 1024


def test_killed_run_leaves_no_valid_looking_snapshot(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i in range(40):
        (data / f"f{i}.bin").write_bytes(os.urandom(2 * 1024 * 1024))
    store = tmp_path / "store"
    args_file = tmp_path / "kill-args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
        "paths": [str(data)], "dest": str(store), "label": "CHG-T6", "compression": "gzip",
        "package_state": False}}))
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.Popen([sys.executable, "-m", MODULES + "backup_snapshot", str(args_file)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    label_dir = store / "CHG-T6"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if label_dir.is_dir() and any(n.startswith(".incomplete-") for n in os.listdir(label_dir)):
            incomplete = label_dir / next(n for n in os.listdir(label_dir) if n.startswith(".incomplete-"))
            if any(p.stat().st_size > 0 for p in incomplete.iterdir()):
                break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    names = os.listdir(label_dir)
    assert names and all(n.startswith(".incomplete-") for n in names), names
    verify = module("backup_verify", {"dest": str(store), "label": "CHG-T6"}, tmp_path)
    assert verify["failed"] is True and "no complete snapshot" in verify["msg"]
    pruned = module("backup_prune", {"dest": str(store), "label": "CHG-T6", "keep_copies": 1,
                                     "incomplete_age_hours": 0}, tmp_path)
    assert pruned["removed_incomplete"] == names and os.listdir(label_dir) == []


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="itsop-unreadable-", dir="/var/tmp"))
    work.chmod(0o755)
    try:
        _unreadable(work)
    finally:
        shutil.rmtree(work)


def _unreadable(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "readable.txt").write_text("ok\n")
    (data / "only-root.key").write_text("secret\n")
    (data / "only-root.key").chmod(0o600)
    store = tmp_path / "store"
    store.mkdir()
    os.chown(store, pwd.getpwnam("nobody").pw_uid, -1)
    result = module("backup_snapshot", {"paths": [str(data)], "dest": str(store), "label": "CHG-T7",
                                        "package_state": False}, tmp_path, user="nobody")
    assert result["failed"] is True, result
    assert str(data / "only-root.key") in result["msg"] and "Permission denied" in result["msg"]
    assert os.listdir(store / "CHG-T7") == []


def _forge_snapshot(tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A snapshot directory holding a crafted (malicious) archive whose hashes match its record."""
    snap = tmp_path / "store" / "EVIL" / "20250101T000000Z-00000000"
    snap.mkdir(parents=True)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    archive = snap / "archive.tar"
    archive.write_bytes(raw.getvalue())
    manifest = snap / "manifest.jsonl"
    # the manifest says what the archive holds, as a forger who can write the store would write it
    kinds = {tarfile.REGTYPE: "file", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
             tarfile.CHRTYPE: "chardev", tarfile.DIRTYPE: "dir"}
    entries = []
    for info, _ in members:
        item = {"path": "/" + info.name.lstrip("/"), "type": kinds[info.type], "mode": "0644", "uid": 0, "gid": 0,
                "mtime": 0, "size": info.size}
        if info.issym():
            item["target"] = info.linkname
        elif info.islnk():
            item["link"] = "/" + info.linkname.lstrip("/")
        entries.append(item)
    manifest.write_text("\n".join(json.dumps(e) for e in [
        {"format": "itsop-backup-manifest/1", "paths": ["/x"]}, *entries, {"end": True}]) + "\n")
    record = {"format": "itsop-backup-snapshot/1", "snapshot_id": snap.name, "label": "EVIL",
              "created_epoch": 0, "compression": "none", "paths": ["/x"],
              "archive": {"name": "archive.tar", "sha256": hashlib.sha256(archive.read_bytes()).hexdigest(),
                          "size": archive.stat().st_size},
              "manifest": {"name": "manifest.jsonl", "sha256": hashlib.sha256(manifest.read_bytes()).hexdigest()},
              "packages": None, "totals": {"entries": len(entries), "files": len(entries), "bytes": 0}}
    (snap / "snapshot.json").write_text(json.dumps(record))
    return snap


def _file(name: str, data: bytes = b"pwned\n") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _device(name: str) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    return info, None


OUTSIDE = "itsop-restore-escape-canary"


@pytest.mark.parametrize("case,members,expect", [
    ("absolute", [_file(f"/tmp/{OUTSIDE}")], "absolute"),
    ("dotdot", [_file(f"x/../../../tmp/{OUTSIDE}")], ".."),
    ("dotdot-leading", [_file(f"../{OUTSIDE}")], ".."),
    ("symlink-then-write-through", [_link("x/esc", "/tmp", tarfile.SYMTYPE), _file(f"x/esc/{OUTSIDE}")],
     "below the symlink"),
    ("relative-symlink-dir", [_link("x/up", "../../..", tarfile.SYMTYPE), _file(f"x/up/tmp/{OUTSIDE}")],
     "below the symlink"),
    ("hardlink-absolute", [_link("x/passwd", "/etc/passwd", tarfile.LNKTYPE)], "absolute"),
    ("hardlink-dotdot", [_link("x/passwd", "../../etc/passwd", tarfile.LNKTYPE)], ".."),
    ("hardlink-through-symlink", [_link("x/e", "/etc", tarfile.SYMTYPE), _link("x/p", "x/e/passwd",
                                                                              tarfile.LNKTYPE)], "symlink"),
    ("device", [_device("x/mem")], "device"),
])
def test_malicious_archives_are_refused(tmp_path: Path, case: str, members: list, expect: str) -> None:
    canary = Path("/tmp") / OUTSIDE
    canary.unlink(missing_ok=True)
    snap = _forge_snapshot(tmp_path, members)
    target = tmp_path / "target"
    result = module("backup_restore", {"snapshot_path": str(snap), "root": str(target)}, tmp_path)
    assert result.get("failed") is True, (case, result)
    assert "refusing" in result["msg"] and expect in result["msg"], result["msg"]
    assert not canary.exists()
    assert not target.exists() or list(target.rglob("*")) == []


def test_symlink_in_target_leading_outside_is_refused(tmp_path: Path, src: Path) -> None:
    snap = _snapshot(tmp_path, src, label="CHG-T8")
    target = tmp_path / "target"
    outside = tmp_path / "outside"
    outside.mkdir()
    target.mkdir()
    os.symlink(str(outside), target / str(src).lstrip("/").split("/")[0])
    result = module("backup_restore", {"snapshot_path": snap["snapshot_dir"], "root": str(target)}, tmp_path)
    assert result["failed"] is True and "leading outside" in result["msg"], result
    assert list(outside.iterdir()) == []


def test_prune_keeps_newest_verified(tmp_path: Path, src: Path) -> None:
    store = tmp_path / "store"
    ids = []
    for _ in range(3):
        ids.append(_snapshot(tmp_path, src, label="CHG-T9")["snapshot_id"])
        time.sleep(0.01)
    verified = module("backup_verify", {"dest": str(store), "label": "CHG-T9", "snapshot_id": ids[0]}, tmp_path)
    assert verified["verdict"] == "passed"
    plan = module("backup_prune", {"dest": str(store), "label": "CHG-T9", "keep_copies": 1}, tmp_path,
                  check_mode=True)
    assert plan["changed"] is True and sorted(plan["removed"]) == sorted([ids[1]])
    assert len(os.listdir(store / "CHG-T9")) == 3
    done = module("backup_prune", {"dest": str(store), "label": "CHG-T9", "keep_copies": 0}, tmp_path)
    assert done["protected"] == ids[0] and sorted(done["removed"]) == sorted(ids[1:])
    assert os.listdir(store / "CHG-T9") == [ids[0]]
    again = module("backup_prune", {"dest": str(store), "label": "CHG-T9", "keep_copies": 0}, tmp_path)
    assert again["changed"] is False


def test_modules_run_through_ansible(tmp_path: Path, src: Path) -> None:
    store = tmp_path / "store"
    proc = run([str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-c", "local", "-m",
                "itsop.change.backup_snapshot", "-a",
                json.dumps({"paths": [str(src)], "dest": str(store), "label": "CHG-T10"})], env=base_env())
    assert "CHANGED" in proc.stdout and "archive_sha256" in proc.stdout


def test_role_signs_records_with_the_controller_key_and_keeps_it_secret(tmp_path: Path, src: Path) -> None:
    """Issue 15 (3): the role reads the key on the controller; the host gets a signed record, never the key."""
    key = os.urandom(32).hex()
    key_file = tmp_path / "record.key"
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    audit = tmp_path / "audit"
    audit.mkdir(mode=0o700)
    playbook = tmp_path / "role.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "connection": "local",
        "vars": {"ansible_python_interpreter": sys.executable,
                 "backup_change_id": "CHG-KEY", "backup_paths": [str(src / "etc")],
                 "backup_dest": str(tmp_path / "host"), "backup_store_dir": str(tmp_path / "ctl"),
                 "backup_record_key_file": str(key_file),
                 "backup_record_key_required": True},
        "roles": ["itsop.change.backup"]}]))
    env = base_env(ANSIBLE_CALLBACKS_ENABLED="itsop.change.audit_log", ITSOP_AUDIT_DIR=str(audit),
                   ITSOP_CHANGE_ID="CHG-KEY")
    proc = run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook), "-v"], env=env)
    assert key not in proc.stdout + proc.stderr
    records = list((tmp_path / "host" / "CHG-KEY").glob("*/snapshot.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["signature"]["alg"] == "HMAC-SHA256"
    checklist = json.loads(next((tmp_path / "ctl").rglob("checklist.json")).read_text())
    assert checklist["kind"] == "backup" and checklist["passed"] is True and checklist["reasons"] == []
    everything = [p for p in tmp_path.rglob("*") if p.is_file() and p != key_file and p.suffix != ".zst"]
    assert any(p.parent == audit for p in everything), "the audit log was not written"
    for path in everything:
        assert key.encode() not in path.read_bytes(), path
    # a key file others can read is refused before anything runs
    key_file.chmod(0o644)
    bad = run([str(REPO / ".venv" / "bin" / "ansible-playbook"), "-i", "localhost,", str(playbook)], env=env,
              check=False)
    assert bad.returncode != 0 and "readable only by its owner" in bad.stdout, bad.stdout[-2000:]


def test_restore_through_ansible_reports_non_utf8_names_without_failing(tmp_path: Path, src: Path) -> None:
    """Issue 15 (9): the controller refused the result ("invalid UTF8 string") after everything was restored."""
    snap = _snapshot(tmp_path, src, label="CHG-T11")
    alt = tmp_path / "alt"
    proc = run([str(REPO / ".venv" / "bin" / "ansible"), "localhost", "-c", "local", "-m",
                "itsop.change.backup_restore", "-a",
                json.dumps({"snapshot_path": snap["snapshot_dir"], "root": str(alt)})], env=base_env(), check=False)
    assert proc.returncode == 0 and "CHANGED" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "bad-\\xff-name" in proc.stdout and "escaped_names" in proc.stdout
    assert os.path.isdir(os.fsencode(alt) + os.fsencode(src) + b"/etc/app/bad-\xff-name")
