"""pytest fixtures shared by unit and integration tests."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.helpers import COLLECTIONS, REPO, ROUTER_IMAGE, RouterEstate, TestHost, have_podman_image

# Make ``ansible_collections.itsop.change`` importable for unit tests of plugins and module_utils.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
if str(REPO / "controller") not in sys.path:
    sys.path.insert(0, str(REPO / "controller"))

# Property-based tests keep no example database in the checkout (no state beside the sources;
# every run draws its examples afresh within each test's bounded max_examples).
settings.register_profile("itsop", database=None)
settings.load_profile("itsop")


# The longest files start first, so that the two workers (scripts/test.sh: pytest-xdist, one file
# per worker at a time, --no-loadscope-reorder) do not end on one long file; the many short files
# fill the gaps. Figures: docs/testing.md.
LONGEST_FIRST = ("tests/e2e/test_demo.py", "tests/integration/test_molecule.py",
                 "tests/integration/test_stage1_3.py", "tests/integration/test_stage4_5_validate_monitor.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keeps its order


@pytest.fixture
def testhost(tmp_path) -> Iterator[TestHost]:
    """A fresh systemd test host (container) removed after the test."""
    if not have_podman_image():
        pytest.fail("test-host image missing: run scripts/setup.sh (it builds localhost/itsop-testhost)")
    host = TestHost().start()
    try:
        yield host
    finally:
        host.remove()


@pytest.fixture(scope="module")
def routers() -> Iterator[RouterEstate]:
    """The demo's three FRR routers under a prefix of their own, one estate per test module, with
    their eBGP sessions established and OSPF adjacencies full (within seconds of the routers' start)."""
    if not have_podman_image(ROUTER_IMAGE):
        pytest.fail(f"router image {ROUTER_IMAGE} missing: run scripts/setup.sh")
    estate = RouterEstate().start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            summary = json.loads(estate.vtysh(estate.names[1], "show bgp summary json"))
            peers = summary.get("ipv4Unicast", {}).get("peers", {})
            ospf = json.loads(estate.vtysh(estate.names[1], "show ip ospf neighbor json")).get("neighbors", {})
            full = [n for entries in ospf.values() for n in entries if n.get("state", "").startswith("Full")]
            if len(peers) == 2 and all(p["state"] == "Established" for p in peers.values()) and len(full) == 2:
                break
            time.sleep(1)
        else:
            pytest.fail(f"BGP and OSPF did not come up between the routers: {summary} {ospf}")
        yield estate
    finally:
        estate.stop()
