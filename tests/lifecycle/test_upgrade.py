"""Upgraded under load on a host an admin has customised.

dist/'s version is installed, the admin edits two conffiles and disables the
ooi add-on's links; then both packages are upgraded to a newer build of this
tree (which changes those two conffiles) while clients keep calling :8774.
The tests run in file order.
"""
import time

import pytest

from lifecycle_testbed import (CA, CERT, Load, booted_testbed, upgrade_repository,
                               use_test_certificate, vassal, version)

OLD = version()
TLS_CONF = "/etc/nova-uwsgi-gateway/nginx/tls.conf"
VASSAL = "/etc/nova-uwsgi-gateway/vassals-available/osapi_compute.ini"
OOI_LINKS = ("/etc/nova-uwsgi-gateway/vassals-enabled/ooi_api.ini",
             "/etc/nginx/sites-enabled/ooi-uwsgi-gateway.conf")
UPGRADE = {}


@pytest.fixture(scope="module")
def testbed(init):
    repo, UPGRADE["version"] = upgrade_repository()
    with booted_testbed("test_upgrade", repo, init) as bed:
        yield bed


def ready_workers(testbed, count, old=frozenset()):
    """Wait until the vassal has ``count`` workers, none of ``old``, each with nova loaded."""
    def settled():
        pids = vassal(testbed)[1]
        log = testbed.gateway_log()
        return len(pids) == count and not pids & old and \
            all(f" pid: {pid} (default app)" in log for pid in pids)
    deadline = time.monotonic() + 120
    while not settled():
        assert time.monotonic() < deadline, "the vassal's workers did not settle\n" + \
            testbed.run(f"{testbed.gateway_log_command} | grep -v ' INFO \\| WARNING ' "
                        "| tail -n 40").stdout
        time.sleep(0.5)
    return vassal(testbed)[1]


def installed_version(testbed, package):
    return testbed.run(f"dpkg-query -W -f='${{Version}}' {package}").stdout


def test_the_old_version_serves_with_the_admins_certificate_and_ooi_disabled(testbed):
    testbed.apt(f"install nova-uwsgi-gateway={OLD} ooi-uwsgi-gateway={OLD}")
    use_test_certificate(testbed)
    testbed.run(f"sed -i 's/^processes = 2$/processes = 3/' {VASSAL}")
    testbed.run("rm " + " ".join(OOI_LINKS) + " && invoke-rc.d nginx reload")

    testbed.wait_until(f"curl -sfS --cacert {CA} https://127.0.0.1:8774/", "the admin's certificate")
    ready_workers(testbed, 3)


def test_upgrade_under_load_fails_no_request_and_keeps_every_admin_choice(testbed):
    before = ready_workers(testbed, 3)

    with Load(testbed) as load:
        out = testbed.apt("install nova-uwsgi-gateway ooi-uwsgi-gateway").stdout
        # The vassal runs the new code once its workers are replaced (after dpkg returns).
        ready_workers(testbed, 3, old=before)

    new = UPGRADE["version"]
    assert installed_version(testbed, "nova-uwsgi-gateway") == new
    assert installed_version(testbed, "ooi-uwsgi-gateway") == new
    assert load.failed == [], "requests failed during the upgrade"
    assert load.ok, "no request was answered during the upgrade"
    # dpkg kept the admin's conffiles and put the new ones beside them.
    assert CERT in testbed.path(TLS_CONF).read_text()
    assert "processes = 3" in testbed.path(VASSAL).read_text()
    for conffile in (TLS_CONF, VASSAL):
        assert testbed.path(conffile + ".dpkg-dist").exists(), out
    for link in OOI_LINKS:
        assert not testbed.path(link).is_symlink(), f"{link} came back"


def test_a_change_of_novas_code_alone_reloads_the_workers_under_load(testbed):
    before = ready_workers(testbed, 3)

    with Load(testbed) as load:
        # What dpkg does when python3-nova's files change (its upgrade alone, e.g. a
        # security update): our file trigger, processed as at the end of a dpkg run.
        testbed.run("dpkg-trigger --no-await /usr/lib/python3/dist-packages/nova && "
                    "dpkg --triggers-only --pending")
        ready_workers(testbed, 3, old=before)

    assert load.failed == [], "requests failed during the reload"
