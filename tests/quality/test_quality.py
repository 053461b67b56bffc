"""Quality gates run by the test command: ruff, ansible-lint (production profile), ansible-test
sanity on the shipped collection content, collection build, and ansible-doc for every plugin."""

from __future__ import annotations

import json
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


def test_ansible_test_sanity(tmp_path: Path):
    dest = tmp_path / "ansible_collections" / "itsop" / "change"
    for name in shipped_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target, follow_symlinks=False)
    (dest / "tests" / "sanity").mkdir(parents=True, exist_ok=True)
    for ignore in (REPO / "tests" / "sanity").glob("ignore-*.txt"):
        shutil.copy2(ignore, dest / "tests" / "sanity" / ignore.name)
    env = base_env()
    env.pop("ANSIBLE_CONFIG", None)
    proc = run([str(VENV_BIN / "ansible-test"), "sanity", "--venv", "--python", "3.11", "--color", "no"],
               cwd=dest, env=env, check=False, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-10000:] + proc.stderr[-6000:]


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
