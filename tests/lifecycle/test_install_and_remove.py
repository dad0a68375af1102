"""Installed next to a running nginx and Debian's nova-api; removed and purged again.
Then the metadata add-on, next to Debian's nova-api-metadata.

The testbed boots (nginx and nova-api start, as on any host that runs them),
and dpkg's maintainer scripts act for real: nobody restarts anything by hand.
The tests run in file order.
"""
from lifecycle_testbed import nova_api_running

PKG = "nova-uwsgi-gateway"
SYSTEMD_WANTS = "/etc/systemd/system/multi-user.target.wants/{}.service"
# Bookkeeping of dpkg/apt and logs of other daemons: not files of ours.
NOT_OURS = ("/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/", "/var/log/apt/",
            "/var/log/dpkg.log", "/var/log/nginx/", "/var/log/nova/", "/var/lib/nova/",
            "/run/utmp",
            # systemctl's password agent, recording the terminal (a pts) it asked on.
            "/run/systemd/ask-password-block")

BEFORE_INSTALL = set()


def nova_api(testbed, service="nova-api", port=8774):
    """What an operator checks of Debian's nova-api (or ``service`` on ``port``): enabled
    for sysvinit, for systemd, running, and the port's answer to plain HTTP."""
    answer = testbed.run(f"curl -s -o /dev/null -w '%{{http_code}}' http://127.0.0.1:{port}/",
                         check=False).stdout
    return {
        "sysv-enabled": testbed.run(f"ls /etc/rc2.d/S*{service}", check=False).returncode == 0,
        "systemd-enabled": testbed.path(SYSTEMD_WANTS.format(service)).is_symlink(),
        "running": nova_api_running(testbed, service),
        f"plain-http-{port}": answer,
    }


def file_list(testbed):
    out = testbed.run("find / \\( -path /proc -o -path /sys -o -path /dev -o -path /srv/dist "
                      "-o -path /tmp \\) -prune -o -print").stdout
    return {path for path in out.splitlines() if not path.startswith(NOT_OURS)}


def https_get(testbed, path="/", port=8774):
    """GET over TLS, verified against the snakeoil certificate the site ships with."""
    name = testbed.run("openssl x509 -noout -subject -nameopt multiline "
                       "-in /etc/ssl/certs/ssl-cert-snakeoil.pem | sed -n 's/ *commonName *= //p'"
                       ).stdout.strip()
    return testbed.run(f"curl -sS --max-time 30 --cacert /etc/ssl/certs/ssl-cert-snakeoil.pem "
                       f"--resolve {name}:{port}:127.0.0.1 -w '\\n%{{http_code}}' "
                       f"https://{name}:{port}{path}", check=False)


def nginx_master(testbed):
    return testbed.run("cat /run/nginx.pid").stdout.strip()


def test_before_install_nginx_and_nova_api_run_and_nova_api_holds_8774(testbed):
    assert nova_api(testbed) == {"sysv-enabled": True, "systemd-enabled": True,
                                 "running": True, "plain-http-8774": "200"}
    assert testbed.run("/etc/init.d/nginx status", check=False).returncode == 0
    BEFORE_INSTALL.update(file_list(testbed))


def test_install_stops_and_disables_nova_api_and_serves_8774_over_tls(testbed):
    master = nginx_master(testbed)

    out = testbed.apt(f"install {PKG}").stdout

    assert "stopping and disabling nova-api" in out
    assert nova_api(testbed) == {"sysv-enabled": False, "systemd-enabled": False,
                                 "running": False, "plain-http-8774": "400"}, \
        "nova-api still enabled, running, or answering plain HTTP on 8774"
    # The emperor's socket: a request waits in it until the vassal has nova loaded.
    testbed.wait_until("test -S /run/nova-uwsgi-gateway/osapi_compute.sock", "the socket")
    served = https_get(testbed)
    assert served.stdout.endswith("\n200"), served.stdout + served.stderr + testbed.logs()
    assert '"id": "v2.1"' in served.stdout
    assert nginx_master(testbed) == master, "nginx was restarted, not reloaded"


def test_remove_enables_and_starts_nova_api_again(testbed):
    out = testbed.apt(f"remove {PKG}").stdout

    assert "enabling and starting nova-api again" in out
    assert nova_api(testbed) == {"sysv-enabled": True, "systemd-enabled": True,
                                 "running": True, "plain-http-8774": "200"}
    emperor = testbed.run("pgrep -f nova-uwsgi-gateway/[e]mperor.ini", check=False)
    assert emperor.returncode == 1, f"emperor still running: {emperor.stdout}"


def test_purge_leaves_no_file_the_package_created(testbed):
    testbed.apt(f"purge {PKG}")

    after = file_list(testbed)
    assert sorted(after - BEFORE_INSTALL) == [], "left behind after purge"
    assert sorted(BEFORE_INSTALL - after) == [], "gone after purge"


METADATA = "nova-uwsgi-gateway-metadata"


def nova_api_metadata(testbed):
    return nova_api(testbed, "nova-api-metadata", 8775)


def test_the_metadata_add_on_takes_8775_from_nova_api_metadata_and_serves_it_over_tls(testbed):
    assert nova_api_metadata(testbed) == {"sysv-enabled": True, "systemd-enabled": True,
                                          "running": True, "plain-http-8775": "200"}

    out = testbed.apt(f"install {METADATA}").stdout

    assert f"{METADATA}: stopping and disabling nova-api-metadata" in out
    assert nova_api_metadata(testbed) == {"sysv-enabled": False, "systemd-enabled": False,
                                          "running": False, "plain-http-8775": "400"}
    testbed.wait_until("test -S /run/nova-uwsgi-gateway/metadata.sock", "the socket")
    served = https_get(testbed, port=8775)
    assert served.stdout.endswith("\n200"), served.stdout + served.stderr + testbed.logs()
    assert "latest" in served.stdout.split()


def test_removing_the_metadata_add_on_gives_8775_back_and_8774_keeps_serving(testbed):
    out = testbed.apt(f"remove {METADATA}").stdout

    assert f"{METADATA}: enabling and starting nova-api-metadata again" in out
    assert nova_api_metadata(testbed) == {"sysv-enabled": True, "systemd-enabled": True,
                                          "running": True, "plain-http-8775": "200"}
    assert https_get(testbed).stdout.endswith("\n200")
    testbed.apt(f"purge {METADATA} {PKG}")
    assert sorted(file_list(testbed) ^ BEFORE_INSTALL) == [], "not as before the installation"


def test_an_admin_who_disabled_nova_api_keeps_it_disabled_after_remove(testbed):
    testbed.run("invoke-rc.d nova-api stop; update-rc.d nova-api disable; "
                "systemctl disable nova-api.service")
    disabled = {"sysv-enabled": False, "systemd-enabled": False, "running": False}

    out = testbed.apt(f"install {PKG}").stdout
    assert "nova-api" not in out
    testbed.apt(f"remove {PKG}")

    state = nova_api(testbed)
    assert state.pop("plain-http-8774") != "200"
    assert state == disabled
