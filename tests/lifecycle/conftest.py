import pytest

from lifecycle_testbed import TOP, booted_testbed


@pytest.fixture(scope="module")
def testbed(request):
    """A booted testbed of its own for each test module, with dist/ as its apt repository."""
    if not list((TOP / "dist").glob("*.deb")):
        pytest.fail("no .deb in dist/: run `make dist` first")
    with booted_testbed(request.module.__name__, TOP / "dist") as bed:
        yield bed
