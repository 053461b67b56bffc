"""Quality gates run by the test command: ruff, ansible-lint (production profile), ansible-test
sanity on the shipped collection content, collection build, and ansible-doc for every plugin."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, VENV_BIN, base_env, run


def shipped_files() -> list[str]:
    """Files that go into the built collection (git-tracked or new, minus galaxy build_ignore)."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout.split("\n")
    ignore = yaml.safe_load((REPO / "galaxy.yml").read_text())["build_ignore"]
    out = []
    for name in filter(None, listed):
        top = name.split("/", 1)[0]
        if top in ignore or name in ignore or not (REPO / name).exists():
            continue
        out.append(name)
    return out


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


def test_ansible_test_sanity():
    # A persistent copy keeps ansible-test's virtual environments between runs. It must lie outside
    # any git work tree: ansible-test lists files with git there, and would find none (ignored).
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "itsop-change-sanity"
    dest = cache / hashlib.sha256(str(REPO).encode()).hexdigest()[:12] / "ansible_collections" / "itsop" / "change"
    keep = {"tests/output"}
    wanted = set(shipped_files()) | {f"tests/sanity/{p.name}" for p in (REPO / "tests" / "sanity").glob("ignore-*.txt")}
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
    env = base_env()
    env.pop("ANSIBLE_CONFIG", None)
    proc = run([str(VENV_BIN / "ansible-test"), "sanity", "--venv", "--python", "3.11", "--color", "no"],
               cwd=dest, env=env, check=False, timeout=2400)
    assert 'Running sanity test "validate-modules"' in proc.stdout + proc.stderr, proc.stdout[-3000:]
    assert subprocess.run(["git", "-C", str(dest), "rev-parse"], capture_output=True, check=False).returncode != 0
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith(("ERROR", "FATAL"))]
    assert proc.returncode == 0, "\n".join(errors[-200:]) or proc.stdout[-6000:] + proc.stderr[-6000:]


def test_collection_builds_without_tests_or_ci(tmp_path: Path):
    run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), str(REPO)])
    (artifact,) = tmp_path.glob("itsop-change-*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    for excluded in ("tests", "controller", "molecule", "inventories", "benchmarks", ".ci", ".venv", ".cache"):
        assert not any(n == excluded or n.startswith(excluded + "/") for n in names), excluded
    assert any(n.startswith("roles/demo_app/") for n in names)


def _plugins(kind: str) -> list[str]:
    folder = REPO / "plugins" / kind
    return sorted(p.stem for p in folder.glob("*.py") if not p.name.startswith("_")) if folder.is_dir() else []


@pytest.mark.parametrize(("kind", "plugin_dir"), [("module", "modules"), ("callback", "callback")])
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
