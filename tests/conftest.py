"""pytest fixtures shared by unit and integration tests."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.helpers import COLLECTIONS, REPO, TestHost, have_podman_image

# Make ``ansible_collections.itsop.change`` importable for unit tests of plugins and module_utils.
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))
if str(REPO / "controller") not in sys.path:
    sys.path.insert(0, str(REPO / "controller"))

# Property-based tests keep no example database in the checkout (no state beside the sources;
# every run draws its examples afresh within each test's bounded max_examples).
settings.register_profile("itsop", database=None)
settings.load_profile("itsop")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


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
