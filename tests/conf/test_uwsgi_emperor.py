"""The gateway's emperor (share/emperor-pool.ini, then emperor.ini), run by the
real uwsgi-core, watching a copy of vassals-enabled/ with the shipped vassal ini
(pool, uid/gid, chdir and wsgi-file pointed at the test's) linked into it as
postinst would."""
import errno
import os
import re
import socket
import shutil
import signal
import subprocess
import threading
import time
import types

import pytest

from conf_harness import (
    INSTALLED_RUN, TOP, UWSGI, Vassal, clean_env, copy_conf, pool_ini, public_tmpdir,
    socket_dir, stop, uwsgi_request, wait_for, write_echo_app)

SCAN = 3 + 2  # uWSGI's default emperor-freq (3 s), and room to act on it


def pid_alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def emperor():
    root = public_tmpdir("nova-uwsgi-gateway-emperor-")
    proc = None
    try:
        etc = copy_conf(root / "etc")
        enabled = etc / "vassals-enabled"   # made by the package (.dirs)
        enabled.mkdir()
        available = etc / "vassals-available" / "osapi_compute.ini"
        vassal = Vassal(available, available).for_test(
            root, write_echo_app(root), pool=True)
        log = root / "emperor.log"
        # A copy of uwsgi-core, which a test can replace as an upgrade does: the
        # emperor starts its vassals from the file at this path.
        binary = root / "bin" / "uwsgi-core"
        binary.parent.mkdir()
        shutil.copy2(UWSGI, binary)
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(binary), "--ini", str(pool_ini(root)),
                                     "--ini", str(etc / "emperor.ini")],
                                    stdout=out, stderr=out, env=clean_env())
        em = types.SimpleNamespace(
            root=root, proc=proc, enabled=enabled, vassal=vassal, binary=binary,
            link=enabled / "osapi_compute.ini",
            log=lambda: log.read_text(errors="replace"))

        def vassal_started(times):
            """The master's pid once the emperor has started the vassal `times`
            times and both its workers have the app."""
            wait_for(lambda: proc.poll() is None and em.log().count(
                "[emperor] vassal osapi_compute.ini is ready to accept requests") >= times,
                SCAN + 5, "the emperor to start the vassal")
            wait_for(lambda: em.log().count("WSGI app 0 (mountpoint='') ready") >= 2 * times,
                     5, "both workers")
            # The first is the emperor's own master (it holds the sockets).
            pids = re.findall(r"spawned uWSGI master process \(pid: (\d+)\)", em.log())
            assert len(pids) == 1 + times, em.log()
            return int(pids[-1])

        def enable():
            em.link.symlink_to("../vassals-available/osapi_compute.ini")
            return vassal_started(1)
        em.enable = enable
        em.vassal_started = vassal_started
        yield em
    finally:
        if proc is not None:
            # SIGTERM ends the emperor and its vassals.
            stop(proc, signal.SIGTERM, timeout=40)
        shutil.rmtree(root)


def test_emperor_starts_a_linked_vassal_and_stops_it_when_unlinked(emperor):
    # A conffile copy left next to it by dpkg must not start a second vassal.
    shutil.copyfile(emperor.vassal.path,
                    emperor.enabled / "osapi_compute.ini.dpkg-dist")
    master = emperor.enable()

    assert uwsgi_request(emperor.vassal.socket)[0] == 200
    assert "dpkg-dist" not in emperor.log()

    emperor.link.unlink()

    wait_for(lambda: not pid_alive(master), SCAN, "the vassal to stop")
    wait_for(lambda: "[emperor] removed uwsgi instance osapi_compute.ini"
             in emperor.log(), 5, "the emperor to log the removal")
    assert emperor.proc.poll() is None          # the emperor stays
    # ...and keeps the socket for the vassal's return.
    emperor.link.symlink_to("../vassals-available/osapi_compute.ini")
    emperor.vassal_started(2)
    assert uwsgi_request(emperor.vassal.socket)[0] == 200


def test_sigterm_stops_the_emperor_and_its_vassals(emperor):
    master = emperor.enable()

    emperor.proc.send_signal(signal.SIGTERM)

    assert emperor.proc.wait(40) == 0
    assert not pid_alive(master)
    assert connect_error(emperor.vassal.socket) in (errno.ECONNREFUSED, errno.ENOENT)


def connect_error(path):
    with socket.socket(socket.AF_UNIX) as s:
        return s.connect_ex(str(path))


def test_a_killed_vassal_master_is_respawned_and_its_socket_keeps_accepting(emperor):
    master = emperor.enable()

    os.kill(master, signal.SIGKILL)
    # Sent while no vassal runs: it waits in the emperor's socket for the new one.
    status, body = uwsgi_request(emperor.vassal.socket, timeout=SCAN + 15)

    assert status == 200, emperor.log()
    assert emperor.vassal_started(2) != master


def slow_request_during(emperor, action, seconds):
    result = {}

    def client():
        result["response"] = uwsgi_request(
            emperor.vassal.socket, "/slow", headers={"QUERY_STRING": str(seconds)},
            timeout=seconds + 30)
    thread = threading.Thread(target=client)
    thread.start()
    time.sleep(0.5)
    action()
    thread.join(seconds + 40)
    return result["response"]


def test_stopping_the_gateway_lets_requests_in_flight_finish(emperor):
    emperor.enable()

    status, body = slow_request_during(
        emperor, lambda: emperor.proc.send_signal(signal.SIGTERM), 2)

    assert status == 200, emperor.log()


def test_disabling_a_vassal_lets_requests_in_flight_finish(emperor):
    emperor.enable()

    # Long enough for the emperor's next scan to notice the removal.
    status, body = slow_request_during(emperor, emperor.link.unlink, SCAN + 1)

    assert status == 200, emperor.log()


def reload_vassals(emperor):
    """share/reload-vassals (the service's reload) on this emperor's fifos."""
    script = emperor.root / "reload-vassals"
    script.write_text((TOP / "share" / "reload-vassals").read_text().replace(
        INSTALLED_RUN, str(socket_dir(emperor.root))))
    return subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=30,
                          env=clean_env())


def workers(master):
    return {int(pid) for pid in
            open(f"/proc/{master}/task/{master}/children").read().split()}


def test_reload_replaces_each_worker_and_keeps_the_master(emperor):
    master = emperor.enable()
    before = workers(master)

    reload = reload_vassals(emperor)
    wait_for(lambda: emperor.log().count("chain reloading complete") >= 1, 30,
             "the chain reload")

    assert reload.returncode == 0, reload.stderr
    assert pid_alive(master), emperor.log()
    assert not workers(master) & before, emperor.log()


def test_reload_after_an_upgrade_of_uwsgi_restarts_the_vassal_on_the_new_binary(emperor):
    master = emperor.enable()
    # What dpkg does to a file it upgrades: a new file renamed over the old one.
    shutil.copy2(UWSGI, emperor.binary.with_suffix(".dpkg-new"))
    emperor.binary.with_suffix(".dpkg-new").rename(emperor.binary)

    reload = reload_vassals(emperor)
    # Sent while the vassal restarts: it waits in the emperor's socket.
    status, _ = uwsgi_request(emperor.vassal.socket, timeout=SCAN + 30)
    new = emperor.vassal_started(2)

    assert reload.returncode == 0, reload.stderr
    assert "osapi_compute runs replaced code: restarting it" in reload.stdout
    assert status == 200, emperor.log()
    assert new != master
    assert os.readlink(f"/proc/{new}/exe") == str(emperor.binary), emperor.log()
