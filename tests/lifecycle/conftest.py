import pytest

from lifecycle_testbed import HERE, TOP, booted_testbed
from testbeds import FULL_LIFECYCLE, host_release

# On every release: the scenarios of both init systems, and piuparts. The other
# modules run on FULL_LIFECYCLE's release only (tests/release runs them there from a
# host of the other release), booted with its init system.
EVERY_RELEASE = {"test_init_systems.py", "test_piuparts.py"}
if host_release() != FULL_LIFECYCLE[0]:
    collect_ignore = sorted(path.name for path in HERE.glob("test_*.py")
                            if path.name not in EVERY_RELEASE)


@pytest.fixture(scope="module", params=[FULL_LIFECYCLE[1]],
                ids=lambda init: f"{host_release()}-{init}")
def init(request):
    """The init system a module's testbed boots with; test ids name it and the release."""
    return request.param


@pytest.fixture(scope="module")
def testbed(request, init):
    """A booted testbed of its own for each test module, with dist/ as its apt repository."""
    if not list((TOP / "dist").glob("*.deb")):
        pytest.fail("no .deb in dist/: run `make dist` first")
    with booted_testbed(request.module.__name__, TOP / "dist", init) as bed:
        yield bed
