"""The osapi_compute vassal conffile, run by the real uwsgi-core on its own
(socket, uid/gid, chdir and wsgi-file pointed at the test's)."""
import re
import shutil
import signal
import threading
import time

import pytest

from conf_harness import (
    SHIM, TOP, Vassal, public_tmpdir, uwsgi_request, write_echo_app)

# nova's config and an app the shim can load under a name of its own.
NOVA_CONF = """\
[DEFAULT]
transport_url = fake://
host = gateway-conf-test-host
[api]
auth_strategy = noauth2
"""
PASTE_INI = """\
[app:hello]
paste.app_factory = gateway_conf_apps:factory
"""
APPS = '''\
def factory(global_conf, **local_conf):
    import nova.conf
    host = nova.conf.CONF.host

    def application(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("hello from " + host).encode()]
    return application
'''


@pytest.fixture
def root():
    path = public_tmpdir("nova-uwsgi-gateway-vassal-")
    try:
        yield path
    finally:
        shutil.rmtree(path)


@pytest.fixture
def echo_vassal(root, vassal_source):
    vassal = Vassal(vassal_source, root / "osapi_compute.ini").for_test(
        root, write_echo_app(root))
    try:
        yield vassal
    finally:
        vassal.stop()


@pytest.fixture
def shim_vassal(root, vassal_source):
    """The vassal serving `hello` through a hello.py -> wsgi.py symlink, as
    an add-on vassal would; nova's config from the test's files."""
    etc = root / "etc-nova"
    etc.mkdir()
    etc.chmod(0o755)
    (etc / "api-paste.ini").write_text(PASTE_INI)
    (etc / "nova.conf").write_text(NOVA_CONF)
    (root / "gateway_conf_apps.py").write_text(APPS)
    # A copy of the shim any user can read: the tree may sit in /root (0700).
    shutil.copytree(TOP / "nova_uwsgi_gateway", root / "nova_uwsgi_gateway",
                    ignore=shutil.ignore_patterns("__pycache__"))
    entry = root / "hello.py"
    entry.symlink_to(root / SHIM.relative_to(TOP))
    vassal = Vassal(vassal_source, root / "hello.ini").for_test(root, entry)
    vassal.etc = etc
    vassal.env = {"PYTHONPATH": f"{root}", "OS_NOVA_CONFIG_DIR": str(etc),
                  "OS_NOVA_CONFIG_FILES": "api-paste.ini;nova.conf"}
    try:
        yield vassal
    finally:
        vassal.stop()


def test_sigterm_lets_the_request_in_flight_finish_then_stops(echo_vassal):
    echo_vassal.start()
    echo_vassal.wait_ready()
    result = {}

    def slow_request():
        result["response"] = uwsgi_request(echo_vassal.socket, "/slow",
                                           headers={"QUERY_STRING": "2"})
    client = threading.Thread(target=slow_request)
    client.start()
    time.sleep(0.5)

    echo_vassal.proc.send_signal(signal.SIGTERM)
    client.join(15)

    assert result["response"][0] == 200, echo_vassal.log_text()
    assert echo_vassal.proc.wait(10) == 0
    assert "Gracefully killing worker" in echo_vassal.log_text()


def test_vassal_serves_an_add_on_app_named_by_the_shim_symlink(shim_vassal):
    shim_vassal.start(**shim_vassal.env)
    shim_vassal.wait_ready(timeout=30)

    status, body = uwsgi_request(shim_vassal.socket)

    assert (status, body) == (200, b"hello from gateway-conf-test-host")
    assert "nova-uwsgi-gateway:" not in shim_vassal.log_text()


def test_vassal_exits_22_instead_of_respawning_when_the_app_cannot_load(
        shim_vassal):
    missing = shim_vassal.etc / "nova.conf"
    missing.unlink()

    shim_vassal.start(**shim_vassal.env)
    status = shim_vassal.proc.wait(20)

    log = shim_vassal.log_text()
    assert status == 22, log
    assert (f"nova-uwsgi-gateway: cannot load 'hello': cannot read {missing}: "
            "No such file or directory") in log
    assert "need-app requested, destroying the instance" in log
    # Only the first two workers ever started: no respawn loop.
    assert len(re.findall(r"spawned uWSGI worker \d+", log)) == 2, log


def test_stopping_a_vassal_running_nova_does_not_crash_its_workers(shim_vassal):
    shim_vassal.start(**shim_vassal.env)
    shim_vassal.wait_ready(timeout=30)

    shim_vassal.proc.send_signal(signal.SIGTERM)

    assert shim_vassal.proc.wait(20) == 0
    assert "Segmentation Fault" not in shim_vassal.log_text()
