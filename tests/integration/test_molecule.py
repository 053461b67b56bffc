"""Run every Molecule scenario under molecule/ (podman driver, systemd test hosts, testinfra)."""

from __future__ import annotations

import pytest

from tests.helpers import REPO, VENV_BIN, base_env, have_podman_image, run

SCENARIOS = sorted(p.parent.name for p in (REPO / "molecule").glob("*/molecule.yml"))


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario: str):
    if not have_podman_image():
        pytest.fail("test-host image missing: run scripts/setup.sh")
    proc = run([str(VENV_BIN / "molecule"), "test", "-s", scenario], env=base_env(), check=False,
               timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-12000:]
    # Idempotence is in every scenario's sequence; make sure it really ran and passed.
    assert "idempotence" in out.lower(), out[-4000:]
