"""The one upgrade that restarts the emperor: from 0.1.0, whose vassals bound their
own sockets, to this version, whose emperor holds them (debian/changelog, 0.2.0).

0.1.0 is built from its last commit in the same run and installed with the ooi
add-on; both are upgraded while clients call :8774.
"""
import subprocess
import time

import pytest

from lifecycle_testbed import (CA, TOP, Load, booted_testbed, build_debs, repository,
                               use_test_certificate, vassal, version)

RELEASED = "5246dad7bf86aeb8676a2a4b2963bc33af579b18"  # the last commit of 0.1.0


@pytest.fixture(scope="module")
def testbed(init):
    if subprocess.run(["git", "cat-file", "-e", RELEASED + "^{commit}"], cwd=TOP).returncode:
        pytest.fail(f"0.1.0's commit {RELEASED} is not in this clone (shallow?): "
                    "fetch the history")
    repo = repository("released-repo", build_debs("released", ref=RELEASED))
    with booted_testbed("test_upgrade_from_0_1_0", repo, init) as bed:
        yield bed


def test_upgrade_from_0_1_0_restarts_the_emperor_once_and_moves_the_sockets_into_it(testbed):
    testbed.apt("install nova-uwsgi-gateway=0.1.0 ooi-uwsgi-gateway=0.1.0")
    use_test_certificate(testbed)
    testbed.wait_until(f"curl -sf -o /dev/null --cacert {CA} https://127.0.0.1:8774/",
                       "0.1.0 to serve 8774")
    # Every worker loaded (2 nova, 1 ooi): stopping one that is still loading waits
    # out worker-reload-mercy (README), which is not what this test measures.
    testbed.wait_for_workers(3, "nova and ooi in every worker")
    old_master = testbed.emperor_pid()

    with Load(testbed) as load:
        started = time.time()
        out = testbed.apt("install nova-uwsgi-gateway ooi-uwsgi-gateway").stdout
        upgraded = time.time()
        time.sleep(5)

    print(out)
    assert "stopping the 0.1.0 emperor; configure starts the new one" in out
    assert "restarting nova-uwsgi-gateway once, for the new ooi_api.ini" in out
    assert testbed.run("dpkg-query -W -f '${Version}' nova-uwsgi-gateway").stdout == version()
    assert testbed.emperor_pid() not in (old_master, "0")
    assert testbed.run("stat -c '%U:%G %a' /run/nova-uwsgi-gateway/pool").stdout.strip() \
        == "root:nova 750"
    for name in ("osapi_compute", "ooi_api"):
        testbed.wait_until(f"{testbed.gateway_log_command} | grep -q 'zerg socket 0 attached "
                           f"to UNIX address /run/nova-uwsgi-gateway/{name}.sock'",
                           f"the {name} vassal to take its socket from the emperor", 30)
    # ...and nginx reaches ooi's vassal through that socket (ooi answers, if only 401).
    ooi = testbed.run("curl -s -o /dev/null -w '%{http_code}' --max-time 20 "
                      f"--cacert {CA} https://127.0.0.1:8787/",
                      check=False).stdout
    assert ooi not in ("000", "502", "504"), f"8787 answered {ooi}\n{testbed.logs()}"
    assert vassal(testbed)[0] is not None
    # What the restart cost: requests that found no emperor while dpkg ran, none after.
    late = [f for f in load.failed if f[0] > upgraded]
    down = max(f[0] for f in load.failed) - min(f[0] for f in load.failed) if load.failed else 0
    print(f"failed during the upgrade: {len(load.failed)} within {down:.1f} s "
          f"(dpkg ran {upgraded - started:.1f} s), after it: {len(late)}")
    assert not late, late[:10]
    assert [t for t in load.ok if t > upgraded], "no 200 after the upgrade"
