"""Fixtures every autopkgtest of the gateway needs on its testbed."""
import os
import shutil

import pytest

from testbed import EMPEROR_LOG, make_certificate, run


@pytest.fixture(scope="module", autouse=True)
def no_default_site_on_port_80():
    """Testbeds in a user namespace (autopkgtest-virt-unshare) cannot bind ports < 1024."""
    default = "/etc/nginx/sites-enabled/default"
    if os.path.lexists(default):
        target = os.readlink(default)
        os.unlink(default)
        yield
        os.symlink(target, default)
    else:
        yield


@pytest.fixture(scope="module", autouse=True)
def stop_services_at_the_end():
    """Leave no daemon behind on the testbed, whatever happened; keep the logs."""
    yield
    for service in ("nginx", "nova-api", "nova-api-metadata", "nova-uwsgi-gateway"):
        if os.path.exists(f"/etc/init.d/{service}"):
            run(f"/etc/init.d/{service}", "stop", check=False)
    run("pkill", "-KILL", "-x", "uwsgi-core", check=False)
    artifacts = os.environ.get("AUTOPKGTEST_ARTIFACTS")
    for log in (EMPEROR_LOG, "/var/log/nginx/error.log"):
        if artifacts and os.path.exists(log):
            shutil.copy(log, artifacts)


@pytest.fixture(scope="module")
def certificate():
    return make_certificate()
