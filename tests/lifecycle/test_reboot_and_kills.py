"""What a host does to a running gateway: reboots, and processes killed under load.

One testbed with the gateway installed and the admin's certificate in place;
the tests run in file order and each leaves the gateway serving. The emperor
killed: test_init_systems.py, under each init system.
"""
import time

import pytest

from lifecycle_testbed import CA, Load, nova_api_running, use_test_certificate, vassal

SOCKET_DIR = "/run/nova-uwsgi-gateway"
RECOVERY = 3  # seconds: the promise for a killed worker or vassal master


@pytest.fixture(scope="module", autouse=True)
def gateway(testbed):
    testbed.apt("install nova-uwsgi-gateway")
    use_test_certificate(testbed)
    serving(testbed)


def serving(testbed, timeout=60):
    """Wait until :8774 answers 200 over verified TLS and both workers have nova loaded."""
    testbed.wait_until(f"curl -sfS -o /dev/null --cacert {CA} https://127.0.0.1:8774/",
                       "the gateway to answer on 8774", timeout)
    testbed.wait_until(f"test $({testbed.gateway_log_command} | "
                       "grep -c 'ready in .* (default app)') -ge 2", "nova in both workers")


def check_recovered(load, killed_at, in_flight):
    """At most the requests in flight failed, and 200s came back within RECOVERY seconds."""
    late = [f for f in load.failed if f[0] > killed_at + RECOVERY]
    assert len(load.failed) <= in_flight, \
        f"{len(load.failed)} requests failed (in flight: {in_flight}): {load.failed[:10]}"
    assert not late, f"still failing {RECOVERY} s after the kill: {late[:10]}"
    assert [t for t in load.ok if killed_at < t <= killed_at + RECOVERY], \
        f"no 200 within {RECOVERY} s after the kill"


def test_after_a_reboot_the_socket_dir_is_recreated_and_8774_answers(testbed):
    testbed.reboot()

    stat = testbed.run(f"stat -c '%U:%G %a' {SOCKET_DIR}").stdout.strip()
    assert stat == "nova:www-data 750"
    serving(testbed)
    # The emperor binds the sockets as root; the directories decide who connects.
    pool = testbed.run(f"stat -c '%U:%G %a' {SOCKET_DIR}/pool").stdout.strip()
    assert pool == "root:nova 750"
    sock = testbed.run(f"stat -c '%U:%G %a' {SOCKET_DIR}/osapi_compute.sock").stdout.strip()
    assert sock == "root:root 666"
    assert not nova_api_running(testbed), "nova-api came back at boot"


def test_a_worker_killed_under_load_is_replaced_and_only_its_request_fails(testbed):
    master, workers = vassal(testbed)
    victim = min(workers)

    with Load(testbed) as load:
        killed_at = time.time()
        testbed.run(f"kill -9 {victim}")
        time.sleep(RECOVERY + 2)

    check_recovered(load, killed_at, in_flight=1)
    assert vassal(testbed)[0] == master
    testbed.wait_until("test $(pgrep -cf '[-]-ini osapi_compute.ini') = 3", "a new worker")


def test_the_vassal_master_killed_under_load_is_respawned_by_the_emperor(testbed):
    # Its socket belongs to the emperor's pool: requests wait there for the new vassal.
    master, workers = vassal(testbed)

    with Load(testbed) as load:
        killed_at = time.time()
        testbed.run(f"kill -9 {master}")
        time.sleep(RECOVERY + 2)

    check_recovered(load, killed_at, in_flight=load.connections)
    assert vassal(testbed)[0] not in (None, master)

