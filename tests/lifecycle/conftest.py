import pytest

from lifecycle_testbed import TOP, Testbed


@pytest.fixture(scope="module")
def testbed(request):
    """A booted testbed of its own for each test module, with dist/ as its apt repository."""
    if not list((TOP / "dist").glob("*.deb")):
        pytest.fail("no .deb in dist/: run `make dist` first")
    bed = Testbed(request.module.__name__, TOP / "dist").start()
    try:
        bed.boot()
        yield bed
    finally:
        bed.stop()
