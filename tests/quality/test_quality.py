"""Quality gates run by the test command: ruff, ansible-lint (production profile), ansible-test
sanity on the shipped collection content, collection build, and ansible-doc for every plugin."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, VENV_BIN, base_env, run


def _git_files(*flags: str, cwd: Path = REPO) -> set[str]:
    out = subprocess.run(["git", "ls-files", "-z", *flags], cwd=cwd, check=True, capture_output=True).stdout
    return {name.decode("utf-8", "surrogateescape") for name in out.split(b"\0") if name}


def build_collection(src: Path, out: Path) -> Path:
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(src)])
    (artifact,) = out.glob("itsop-change-*.tar.gz")
    return artifact


@pytest.fixture(scope="module")
def release_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The artifact ``ansible-galaxy collection build`` makes of this checkout as it is now
    (after the demo, when the suite ran it first: .demo/ then holds keys, the store, backups)."""
    return build_collection(REPO, tmp_path_factory.mktemp("build"))


def shipped_files(artifact: Path) -> list[str]:
    """Regular files inside the built collection, except the build's own MANIFEST/FILES."""
    with tarfile.open(artifact) as tar:
        return [m.name for m in tar.getmembers() if m.isfile() and m.name not in ("MANIFEST.json", "FILES.json")]


def test_ruff_clean():
    proc = run([str(VENV_BIN / "ruff"), "check", "."], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ansible_lint_production_profile_without_skips():
    cfg = yaml.safe_load((REPO / ".ansible-lint").read_text())
    assert cfg["profile"] == "production"
    assert not cfg.get("skip_list") and not cfg.get("warn_list"), "no skip or warn lists allowed"
    proc = run([str(VENV_BIN / "ansible-lint"), "--offline", "-q"], check=False, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-8000:]


def test_sanity_ignore_files_empty():
    for ignore in (REPO / "tests" / "sanity").glob("ignore-*.txt"):
        assert ignore.read_text().strip() == "", f"{ignore} must stay empty"


def ansible_collections_dir() -> str:
    """The ansible_collections folder of the virtualenv (the collections the ansible package installs)."""
    code = ("import ansible_collections.ansible.netcommon as m, os; "
            "print(os.path.dirname(os.path.dirname(m.__path__[0])))")
    return run([str(VENV_BIN / "python"), "-c", code]).stdout.strip()


def test_ansible_test_sanity(release_artifact: Path):
    # A persistent copy keeps ansible-test's virtual environments between runs. It must lie outside
    # any git work tree: ansible-test lists files with git there, and would find none (ignored).
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "itsop-change-sanity"
    dest = cache / hashlib.sha256(str(REPO).encode()).hexdigest()[:12] / "ansible_collections" / "itsop" / "change"
    keep = {"tests/output"}
    wanted = set(shipped_files(release_artifact))
    wanted |= {f"tests/sanity/{p.name}" for p in (REPO / "tests" / "sanity").glob("ignore-*.txt")}
    if dest.exists():
        for path in sorted(dest.rglob("*"), reverse=True):
            rel = path.relative_to(dest).as_posix()
            if any(rel == k or rel.startswith(k + "/") for k in keep):
                continue
            if path.is_file() and rel not in wanted:
                path.unlink()
            elif path.is_dir() and not any(path.iterdir()):
                path.rmdir()
    for name in wanted:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)
    # the collection's dependency (galaxy.yml) beside it, as ansible-galaxy would install it
    site = Path(ansible_collections_dir())
    for dependency in ("ansible/netcommon", "ansible/utils"):
        link = dest.parents[1] / dependency
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to(site / dependency)
    env = base_env()
    env.pop("ANSIBLE_CONFIG", None)
    proc = run([str(VENV_BIN / "ansible-test"), "sanity", "--venv", "--python", "3.11", "--color", "no"],
               cwd=dest, env=env, check=False, timeout=2400)
    assert 'Running sanity test "validate-modules"' in proc.stdout + proc.stderr, proc.stdout[-3000:]
    assert subprocess.run(["git", "-C", str(dest), "rev-parse"], capture_output=True, check=False).returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("ERROR", "FATAL"))]
    assert proc.returncode == 0, "\n".join(errors[-200:]) or proc.stdout[-6000:] + proc.stderr[-6000:]


#: private material by its form: a PEM/OpenSSH private key anywhere in a file; a file that is a
#: SQLite database or an Ansible vault (the callback's source names the vault header: not a vault)
PRIVATE_KEY_RE = re.compile(rb"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
PRIVATE_HEADERS = (b"SQLite format 3\0", b"$ANSIBLE_VAULT;")


def _private_material(data: bytes) -> list[str]:
    found = [m.group().decode() for m in PRIVATE_KEY_RE.finditer(data)][:1]
    found += [h.decode().strip("\0;") for h in PRIVATE_HEADERS if data.lstrip().startswith(h)]
    return found


def _check_release(artifact: Path, allowed: set[str]) -> list[str]:
    """Problems with a built artifact: members that are not source files, private material."""
    problems = []
    with tarfile.open(artifact) as tar:
        for member in tar.getmembers():
            if member.name in ("MANIFEST.json", "FILES.json"):
                continue
            if member.isdir():
                continue
            if not member.isfile():
                problems.append(f"{member.name}: not a regular file ({member.type!r})")
                continue
            if member.name not in allowed:
                problems.append(f"{member.name}: not a source file of the checkout (state or generated)")
            data = tar.extractfile(member).read()
            problems.extend(f"{member.name}: holds {what}" for what in _private_material(data))
    return problems


def test_release_build_ships_no_state_or_secrets(release_artifact: Path):
    """Build the real checkout (after the demo in a full run) and check every member: only files
    git knows as source (tracked, or new and not ignored) and no private key, database or vault."""
    allowed = _git_files("--cached", "--others", "--exclude-standard")
    assert _check_release(release_artifact, allowed) == []
    with tarfile.open(release_artifact) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    for excluded in ("tests", "controller", "molecule", "inventories", "benchmarks", ".ci", ".venv", ".cache",
                     ".demo", "scripts", "requirements"):
        assert not any(n == excluded or n.startswith(excluded + "/") for n in names), excluded
    assert any(n.startswith("roles/demo_app/") for n in names)
    assert "plugins/module_utils/safe_input.py" in names


def test_release_build_of_a_tree_full_of_state(tmp_path: Path):
    """The state a demo, the tests and an operator leave in a checkout, planted into a copy of the
    source tree (also where the suite did not run the demo): none of it may reach the artifact."""
    src = tmp_path / "src"
    tracked = _git_files("--cached")
    for name in tracked:
        if (REPO / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, src / name, follow_symlinks=False)
    key = b"-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    planted = {
        ".demo/ssh/id_ed25519": key, ".demo/keys/audit.pem": key, ".demo/keys/budi.key": key,
        ".demo/home/sopctl.db": b"SQLite format 3\0" + b"\0" * 64,
        ".demo/backups/itsop-stg-1/snapshot.json": b"{}",
        ".demo/reports/CHG-2026-0001.md": b"# report\n",
        ".cache/aptrepo/Packages": b"Package: x\n",
        ".venv/bin/python": b"#!/bin/sh\n",
        "molecule/backup/.molecule/state.yml": b"a: 1\n",
        "roles/backup/.secrets.yml": b"$ANSIBLE_VAULT;1.1;AES256\n00\n",
        "roles/backup/files/id_rsa": key,
        "plugins/modules/__pycache__/x.cpython-311.pyc": b"\0",
        "docs/.draft.md": b"draft\n",
        "notes.txt": b"root password hunter2\n",
        "itsop-change-0.0.1.tar.gz": b"\0",
    }
    for name, data in planted.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        path.chmod(0o600)
    artifact = build_collection(src, tmp_path / "out")
    assert _check_release(artifact, tracked) == []
    # the check itself sees what it looks for: an artifact that does ship state fails it
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        for name in (".demo/ssh/id_ed25519", ".demo/home/sopctl.db", "roles/backup/.secrets.yml"):
            tar.add(src / name, arcname=name)
        tar.add(src / "README.md", arcname="README.md")
    assert sorted(_check_release(bad, tracked)) == [
        ".demo/home/sopctl.db: holds SQLite format 3",
        ".demo/home/sopctl.db: not a source file of the checkout (state or generated)",
        ".demo/ssh/id_ed25519: holds -----BEGIN OPENSSH PRIVATE KEY-----",
        ".demo/ssh/id_ed25519: not a source file of the checkout (state or generated)",
        "roles/backup/.secrets.yml: holds $ANSIBLE_VAULT",
        "roles/backup/.secrets.yml: not a source file of the checkout (state or generated)"]
    with tarfile.open(artifact) as tar:
        names = set(tar.getnames())
    assert not names & set(planted), sorted(names & set(planted))
    # what must be there is there: every plugin and role file that is tracked
    for name in tracked:
        if name.startswith(("plugins/", "roles/")) and name.endswith((".py", ".yml", ".j2", ".md")):
            assert name in names, name


def _plugins(kind: str) -> list[str]:
    folder = REPO / "plugins" / kind
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_")) if folder.is_dir() else []


@pytest.mark.parametrize(("kind", "plugin_dir"),
                         [("module", "modules"), ("callback", "callback"), ("filter", "filter")])
def test_ansible_doc_renders_every_plugin(kind: str, plugin_dir: str):
    names = _plugins(plugin_dir)
    if not names:
        pytest.skip(f"no {kind} plugins yet")
    for name in names:
        proc = run([str(VENV_BIN / "ansible-doc"), "-t", kind, "--json", f"itsop.change.{name}"], check=False)
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)[f"itsop.change.{name}"]["doc"]
        assert doc.get("short_description"), f"{name}: short_description missing"


def test_every_role_has_argument_specs_and_readme():
    roles = sorted(p for p in (REPO / "roles").iterdir() if p.is_dir())
    assert roles
    for role in roles:
        assert (role / "meta" / "argument_specs.yml").is_file(), role.name
        assert (role / "README.md").is_file(), role.name
        proc = run([str(VENV_BIN / "ansible-doc"), "-t", "role", "--json", f"itsop.change.{role.name}"], check=False)
        assert proc.returncode == 0, proc.stderr


def test_changelog_fragments_lint():
    proc = run([str(VENV_BIN / "antsibull-changelog"), "lint"], check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


MAX_PYTHON_LINES = 600  # issue 22: a file holds one idea; past this it holds several


def test_no_python_file_over_the_line_limit():
    files = run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"]).stdout.split()
    assert files, "git ls-files found no Python files"
    too_long = {name: n for name in files if (REPO / name).is_file()
                and (n := len((REPO / name).read_text(encoding="utf-8").splitlines())) > MAX_PYTHON_LINES}
    assert too_long == {}, f"split these by idea (limit {MAX_PYTHON_LINES} lines): {too_long}"
