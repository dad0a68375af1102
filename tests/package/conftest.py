import pytest

from package_harness import DIST


@pytest.fixture(scope="session")
def debs():
    """The .debs `make dist` built, by package name."""
    found = {p.name.split("_")[0]: p for p in DIST.glob("*.deb")}
    if not found:
        pytest.fail(f"no .deb in {DIST}: run `make dist` first")
    return found
