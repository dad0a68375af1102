"""A release upgrade, bookworm to trixie, as an operator does it, under systemd.

A bookworm host (the lifecycle testbed, booted with systemd) serves nova with
both packages from bookworm's dist/, an admin's certificate and an edited
vassal. Then its apt sources go to trixie and to trixie's dist/, the packages
are downloaded (`apt full-upgrade --download-only`, in the host's network: the
testbed has none), and `apt full-upgrade` runs while a client on the host keeps
calling :8774; then nova's own `nova-manage` database syncs. The tests run in
file order and print how long :8774 was down.
"""
import subprocess

import pytest

from lifecycle_testbed import (CA, CERT, WORK, Load, Testbed, nova_api_running,
                               use_test_certificate, vassal)
from other_host import RELEASE as OTHER, dist as other_dist
from testbeds import RELEASES, TOP, apt_sources

OLD, NEW = RELEASES  # bookworm, trixie: the upgrade goes up the list
TLS_CONF = "/etc/nova-uwsgi-gateway/nginx/tls.conf"
VASSAL = "/etc/nova-uwsgi-gateway/vassals-available/osapi_compute.ini"
STATE = "/var/lib/nova-uwsgi-gateway"
NOVA = ("curl -sS -o /dev/null -w '%{http_code}' -H 'X-Auth-Token: admin:admin' "
        f"--cacert {CA} https://127.0.0.1:8774")
# nova answers through the gateway from the admin's 3 workers (and a master), twice.
SERVING = (f"test \"$({NOVA}/v2.1/flavors)\" = 200 && "
           "test \"$(pgrep -c -f '[-]-ini osapi_compute.ini$')\" = 4")
STEADY = f"{SERVING} && sleep 5 && {SERVING}"


def dist(release):
    return other_dist() if release == OTHER else TOP / "dist"


def repository():
    """/srv/dist in the testbed: OLD's packages at the top, NEW's in NEW/."""
    repo = WORK / "release-upgrade-repo"
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    for release, where in ((OLD, repo), (NEW, repo / NEW)):
        debs = sorted(dist(release).glob("*.deb"))
        assert debs, f"no .deb in {dist(release)}: `make dist` for {release} did not run"
        where.mkdir(parents=True)
        subprocess.run(["cp", *map(str, debs), str(where)], check=True)
        (where / "Packages").write_bytes(subprocess.run(
            ["apt-ftparchive", "packages", "."], cwd=where, capture_output=True,
            check=True).stdout)
    return repo


@pytest.fixture(scope="module")
def testbed(built):
    if built.returncode:
        pytest.fail(f"make dist failed on {OTHER}: no {OTHER} packages to upgrade with")
    bed = Testbed("release-upgrade", repository(), "systemd", release=OLD).start()
    try:
        bed.boot()
        yield bed
    finally:
        bed.stop()


def installed(testbed, package):
    return testbed.run(f"dpkg-query -W -f='${{Version}}' {package}").stdout


def hand_over_intact(testbed):
    """We took :8774 from nova-api: it is stopped and disabled, and we remember
    to give it back on remove."""
    assert testbed.path(f"{STATE}/disabled-nova-api").exists(), "the hand-over marker is gone"
    assert not nova_api_running(testbed), "nova-api runs again\n" + testbed.logs()
    enabled = testbed.run("systemctl is-enabled nova-api.service", check=False).stdout.strip()
    assert enabled == "disabled", f"nova-api.service is {enabled}"


def test_the_old_release_serves_with_the_admins_edits(testbed):
    testbed.apt("install nova-uwsgi-gateway ooi-uwsgi-gateway")
    use_test_certificate(testbed)
    # The emperor restarts a vassal whose file changed by itself (README: no reload on
    # top, which would make it wait worker-reload-mercy and restart mid-upgrade).
    testbed.run(f"sed -i 's/^processes = 2$/processes = 3/' {VASSAL}")
    testbed.wait_until(STEADY, "nova through the gateway, 3 workers", 120)
    assert installed(testbed, "nova-uwsgi-gateway").endswith(f"+deb{RELEASES[OLD]}")
    hand_over_intact(testbed)


def test_apt_full_upgrade_to_the_new_release_keeps_every_admin_choice(testbed, capsys):
    # The host's own apt settings for the archive (proxy, validity checks), its
    # resolver, and the new release's sources, as the release notes have them.
    acquire = subprocess.run(["apt-config", "dump", "Acquire"], capture_output=True,
                             text=True, check=True).stdout
    testbed.path("/etc/apt/apt.conf.d/00host-acquire").write_text(acquire)
    resolv = open("/etc/resolv.conf").read()
    testbed.run(f"rm -f /etc/resolv.conf && printf '%s' '{resolv}' > /etc/resolv.conf")
    testbed.path("/etc/apt/sources.list.d/debian.list").write_text(
        "".join(line + "\n" for line in apt_sources(NEW)))
    testbed.path("/etc/apt/sources.list.d/gateway.list").write_text(
        f"deb [trusted=yes] file:/srv/dist/{NEW} ./\n")
    testbed.run("apt-get update -q -o Acquire::Languages=none", online=True)
    testbed.apt("--download-only full-upgrade", timeout=1800, online=True)

    with Load(testbed, connections=1, from_host=True) as load:
        testbed.apt("full-upgrade", timeout=1800)
        for step in ("api_db sync", "db sync"):
            testbed.run(f"runuser -u nova -- nova-manage {step}", timeout=600)
        # A worker that loses sqlite's lock to the db sync fails to load nova, and
        # need-app restarts its vassal: wait for the admin's 3 workers serving.
        testbed.wait_until(STEADY, "nova through the gateway after the upgrade, 3 workers", 300)
    # How long :8774 did not answer 200: the longest gap between two answers.
    answers = sorted(load.ok)
    gap = max((b - a for a, b in zip(answers, answers[1:])), default=float("inf"))
    with capsys.disabled():  # a measurement: shown even when the test passes
        print(f"\nmeasured: :8774 down for at most {gap:.1f} s during `apt full-upgrade` "
              f"{OLD} -> {NEW} ({len(load.failed)} failed, {len(answers)} answered 200; "
              f"failures: {sorted(set(what for _, what in load.failed))[:5]})")

    assert installed(testbed, "nova-uwsgi-gateway").endswith(f"+deb{RELEASES[NEW]}")
    assert installed(testbed, "ooi-uwsgi-gateway").endswith(f"+deb{RELEASES[NEW]}")
    assert answers and answers[-1] > (load.failed[-1][0] if load.failed else 0), \
        "the gateway did not serve again after the upgrade"
    # The vassals' masters ran the old uwsgi-core: the reload restarted them (a chain
    # reload would have forked workers of the old interpreter).
    journal = testbed.run("journalctl --no-pager -u nova-uwsgi-gateway").stdout
    for name in ("osapi_compute", "ooi_api"):
        assert f"{name} runs replaced code: restarting it" in journal, "\n".join(
            line for line in journal.splitlines() if "requestlog" not in line)[-4000:]
    # The workers run the new release's Python and nova, not the old interpreter.
    python = testbed.run("readlink -f /usr/bin/python3").stdout.strip().rsplit("/", 1)[1]
    workers = vassal(testbed)[1]
    for pid in workers:
        maps = testbed.run(f"cat /proc/{pid}/maps", quiet=True).stdout
        assert f"lib{python}.so" in maps, f"worker {pid} does not run {python}\n" + \
            testbed.logs()
    # dpkg kept the admin's conffiles.
    assert CERT in testbed.path(TLS_CONF).read_text()
    assert "processes = 3" in testbed.path(VASSAL).read_text()
    assert len(workers) == 3
    hand_over_intact(testbed)
    ooi = testbed.run(f"curl -sS -o /dev/null -w '%{{http_code}}' --cacert {CA} "
                      "https://127.0.0.1:8787/", check=False).stdout
    assert ooi not in ("000", "502", "504"), f"8787 answered {ooi}\n{testbed.logs()}"


def test_after_the_reboot_it_serves_and_the_host_is_not_degraded(testbed):
    testbed.reboot()
    testbed.wait_until(f"test \"$({NOVA}/v2.1/flavors)\" = 200", "nova after the reboot", 120)
    hand_over_intact(testbed)
    failed = testbed.run("systemctl --failed --no-legend --plain").stdout.strip()
    assert failed == "", f"failed units after the release upgrade: {failed}"


def test_remove_gives_nova_api_back_on_the_new_release(testbed):
    testbed.apt("remove ooi-uwsgi-gateway nova-uwsgi-gateway")
    testbed.wait_until("curl -sS -o /dev/null http://127.0.0.1:8774/", "nova-api on :8774", 120)
    assert nova_api_running(testbed)
    assert testbed.run("systemctl is-enabled nova-api.service", check=False).stdout.strip() \
        == "enabled"
