"""Fixtures of the conf tier (the helpers live in conf_harness.py)."""
import shutil
import signal
import types

import pytest

from conf_harness import (
    CONF_SRC, copy_conf, free_port, make_cert, point_site_at, public_tmpdir,
    start_nginx, stop, use_cert, Vassal, write_echo_app, write_nginx_conf)


@pytest.fixture(scope="session")
def cert():
    root = public_tmpdir("nova-uwsgi-gateway-cert-")
    try:
        yield make_cert(root)
    finally:
        shutil.rmtree(root)


@pytest.fixture
def conf_copy():
    """The conffiles in a temporary directory: root/etc is what would be
    /etc/nova-uwsgi-gateway."""
    root = public_tmpdir("nova-uwsgi-gateway-conf-")
    try:
        yield types.SimpleNamespace(root=root, etc=copy_conf(root / "etc"))
    finally:
        shutil.rmtree(root)


@pytest.fixture(scope="module")
def live_gateway(cert):
    """nginx from the site conffiles in front of a uwsgi run from the vassal
    conffile, serving an echo app instead of nova."""
    root = public_tmpdir("nova-uwsgi-gateway-live-")
    nginx = vassal = None
    try:
        etc = copy_conf(root / "etc")
        use_cert(etc, *cert)
        vassal = Vassal(etc / "vassals-available" / "osapi_compute.ini",
                        root / "vassal.ini").for_test(root, write_echo_app(root))
        port = free_port()
        site = point_site_at(etc, port, vassal.socket)
        vassal.start()
        vassal.wait_ready()
        nginx = start_nginx(write_nginx_conf(root, site), root, port)
        yield types.SimpleNamespace(root=root, etc=etc, port=port,
                                    vassal=vassal, cert=cert[0])
    finally:
        if nginx is not None:
            stop(nginx, signal.SIGTERM)
        if vassal is not None:
            vassal.stop()
        shutil.rmtree(root)


@pytest.fixture
def vassal_source():
    return CONF_SRC / "vassals-available" / "osapi_compute.ini"
