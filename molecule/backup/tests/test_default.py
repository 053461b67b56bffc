"""After the side effect (files changed and deleted, then restored) everything is back."""

import hashlib
import json


def _same_content(file, expected: bytes) -> bool:
    """Byte-exact check (the ansible backend strips trailing newlines from command output)."""
    return file.size == len(expected) and file.sha256sum == hashlib.sha256(expected).hexdigest()


def test_changed_file_is_back_with_content_mode_and_owner(host):
    conf = host.file("/srv/app/conf/app.conf")
    assert _same_content(conf, b"listen = 8080\n")
    assert conf.mode == 0o640
    assert conf.user == "appuser" and conf.group == "appuser"


def test_deleted_files_are_back(host):
    secret = host.file("/srv/app/secret.key")
    assert secret.exists and _same_content(secret, b"not-a-real-secret\n")
    assert secret.mode == 0o600 and secret.user == "root"
    link = host.file("/srv/app/current.conf")
    assert link.is_symlink and link.linked_to == "/srv/app/conf/app.conf"


def test_directory_modes_and_owner(host):
    app = host.file("/srv/app")
    assert app.mode == 0o750 and app.user == "appuser"


def test_backup_store_on_host_is_private(host):
    store = host.file("/var/backups/itsop")
    assert store.mode == 0o700
    snapshots = host.check_output("ls /var/backups/itsop/CHG-MOLECULE-1").split()
    assert len(snapshots) == 1, "idempotence re-used the snapshot instead of taking a second one"
    record = json.loads(host.file(f"/var/backups/itsop/CHG-MOLECULE-1/{snapshots[0]}/snapshot.json").content_string)
    assert record["compression"] in ("zstd", "gzip")
    for name in ("snapshot.json", "manifest.jsonl", "verify.json", record["archive"]["name"]):
        assert host.file(f"/var/backups/itsop/CHG-MOLECULE-1/{snapshots[0]}/{name}").mode == 0o600
    verify = json.loads(host.file(f"/var/backups/itsop/CHG-MOLECULE-1/{snapshots[0]}/verify.json").content_string)
    assert verify["verdict"] == "passed"
