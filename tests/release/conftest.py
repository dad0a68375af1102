import pytest

import other_host


@pytest.fixture(scope="session")
def built():
    """The other release's host after `make dist` there (its CompletedProcess):
    made once for every module here."""
    return other_host.build()
