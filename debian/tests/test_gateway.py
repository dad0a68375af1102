"""nova-uwsgi-gateway as an operator meets it, on the testbed it was installed on.

Real nova (python3-nova, throwaway sqlite + noauth2 config), real uWSGI, real
nginx, real clients (curl, the openstack CLI), TLS verified against a CA made
here. The tests run in file order: install, serve, remove, purge.
"""
import glob
import grp
import json
import os
import pwd
import socket
import ssl
import stat
import subprocess
import time
import urllib.request

import pytest

from testbed import (CA, TLS_CONF, AdminEdit, apt, emperor_processes, processes, run,
                     start_gateway, nova_configured, use_certificate, vassal_masters,
                     wait_until)

PKG = "nova-uwsgi-gateway"
BASE = "https://127.0.0.1:8774"
SOCKET_DIR = "/run/nova-uwsgi-gateway"
SOCKET = f"{SOCKET_DIR}/osapi_compute.sock"
POOL = f"{SOCKET_DIR}/pool"
POOL_SERVER = f"{POOL}/osapi_compute"   # hands SOCKET to the vassal
SITE = "/etc/nova-uwsgi-gateway/nginx/nova-api.conf"
SITE_LINK = "/etc/nginx/sites-enabled/nova-uwsgi-gateway.conf"
VASSAL_LINK = "/etc/nova-uwsgi-gateway/vassals-enabled/osapi_compute.ini"

# What dpkg listed for the package right after installation.
INSTALLED_FILES = []


def openstack(*args):
    out = run("openstack", "--os-auth-type", "admin_token",
              "--os-token", "admin:admin", "--os-endpoint", f"{BASE}/v2.1",
              "--os-cacert", CA, *args, "-f", "json").stdout
    return json.loads(out) if out.strip() else None


def get(path, headers=None, data=None):
    """(status, body) of an HTTPS request verified against the test CA."""
    req = urllib.request.Request(BASE + path, headers=headers or {}, data=data)
    ctx = ssl.create_default_context(cafile=CA)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def nova_api_enabled():
    return bool(glob.glob("/etc/rc[2345].d/S*nova-api"))


@pytest.fixture(scope="module", autouse=True)
def noauth2_nova():
    with nova_configured("[api]\nauth_strategy = noauth2\n"):
        yield


def test_install_creates_enable_links_and_takes_8774_from_nova_api():
    # Start from a host where nova-api is installed and enabled.
    apt("purge", PKG)
    run("update-rc.d", "nova-api", "enable")
    assert nova_api_enabled()

    apt("install", PKG)

    assert os.path.islink(SITE_LINK) and os.path.exists(SITE_LINK)
    assert os.path.islink(VASSAL_LINK) and os.path.exists(VASSAL_LINK)
    assert not nova_api_enabled(), "nova-api still enabled after install"
    assert os.path.exists("/var/lib/nova-uwsgi-gateway/disabled-nova-api")
    INSTALLED_FILES.extend(run("dpkg", "-L", PKG).stdout.split())


@pytest.fixture(scope="module")
def gateway(certificate):
    """The admin points tls.conf at the real certificate; both services start."""
    use_certificate(*certificate)
    start_gateway()
    wait_until(lambda: get("/")[0] == 200, "GET / to answer 200 through nginx")


def test_versions_document_is_served_over_tls_with_links_to_https_host_and_port(gateway):
    status, body = get("/")
    assert status == 200
    hrefs = [link["href"] for version in json.loads(body)["versions"]
             for link in version["links"]]
    print("version links:", hrefs)
    assert hrefs
    assert all(href.startswith(f"{BASE}/") for href in hrefs), hrefs


def test_the_status_command_says_ok_for_every_layer(gateway):
    """What an operator's monitoring runs (the test's certificate is for 2 days)."""
    proc = run("nova-uwsgi-gateway-status", "--expiry-warning", "1", check=False)
    assert proc.returncode == 0, proc.stdout
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("NOVA-UWSGI-GATEWAY OK"), proc.stdout
    assert {"config", "nginx", "certificate", "emperor", "vassal", "site"} <= \
        {line.split()[1] for line in lines[1:]}, proc.stdout


def test_openstack_cli_lists_servers_through_the_gateway(gateway):
    assert openstack("server", "list") == []


def test_openstack_cli_creates_lists_and_deletes_a_flavor(gateway):
    created = openstack("flavor", "create", "--ram", "64", "--disk", "1",
                        "--vcpus", "1", "gateway-test")
    assert created["name"] == "gateway-test"
    assert "gateway-test" in [f["Name"] for f in openstack("flavor", "list")]
    run("openstack", "--os-auth-type", "admin_token", "--os-token", "admin:admin",
        "--os-endpoint", f"{BASE}/v2.1", "--os-cacert", CA,
        "flavor", "delete", "gateway-test")
    assert "gateway-test" not in [f["Name"] for f in openstack("flavor", "list")]


def test_vassal_master_and_workers_run_as_nova_under_a_root_emperor(gateway):
    table = processes()
    emperor = emperor_processes(table)   # master, emperor, socket pool
    assert len(emperor) == 3 and {p[2] for p in emperor} == {"root"}, emperor
    vassal = [p for p in table if p[0] in vassal_masters("osapi_compute.ini", table)]
    assert len(vassal) == 1, vassal
    workers = [p for p in table if p[1] == vassal[0][0]]
    print("vassal:", vassal, "workers:", workers)
    assert len(workers) >= 1
    assert {p[2] for p in vassal + workers} == {"nova"}


def connect_as(user, path=SOCKET):
    """Exit status of a connect() to a socket of the gateway made as ``user``."""
    code = ("import socket; s = socket.socket(socket.AF_UNIX); "
            f"s.connect({path!r})")
    return run("runuser", "-u", user, "--", "python3", "-c", code,
               check=False).returncode


def owner_and_mode(path):
    st = os.stat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            stat.S_IMODE(st.st_mode))


def test_only_nginx_user_can_reach_the_socket_and_only_nova_the_pool(gateway):
    # The emperor binds both as root, 0666; the directories decide.
    assert owner_and_mode(SOCKET_DIR) == ("nova", "www-data", 0o750)
    assert owner_and_mode(POOL) == ("root", "nova", 0o750)
    assert stat.S_ISSOCK(os.stat(SOCKET).st_mode)
    assert connect_as("www-data") == 0
    assert connect_as("nobody") != 0
    assert connect_as("nova", POOL_SERVER) == 0
    assert connect_as("www-data", POOL_SERVER) != 0
    assert connect_as("nobody", POOL_SERVER) != 0


def test_tls_below_1_2_is_refused(gateway):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(CA)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", 8774), timeout=10) as raw:
            ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = ssl.create_default_context(cafile=CA)
        ctx.minimum_version = ctx.maximum_version = version
        with socket.create_connection(("127.0.0.1", 8774), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                assert tls.version() == version.name.replace("_", ".")


def test_a_32_KiB_token_reaches_nova_and_an_oversized_header_is_a_clean_400(gateway):
    status, _ = get("/v2.1/flavors", {"X-Auth-Token": "admin:" + "a" * 32768})
    assert status not in (400, 431, 500, 502), status
    status, _ = get("/v2.1/flavors", {"X-Auth-Token": "a" * 70000})
    assert status in (400, 431), status


def test_a_body_over_novas_limit_is_413(gateway):
    status, _ = get("/v2.1/flavors", {"X-Auth-Token": "admin:admin",
                                      "Content-Type": "application/json"},
                    data=b"x" * 200000)
    assert status == 413


def test_a_broken_site_is_named_the_package_still_configures_and_nginx_keeps_serving(gateway):
    with AdminEdit(SITE, "server_name _;", "server_name _;\n    this is not nginx;"):
        installed = apt("install", "--reinstall", PKG)
        assert SITE in installed.stdout + installed.stderr
        check = run("/usr/share/nova-uwsgi-gateway/check-config", check=False)
        assert check.returncode == 1 and SITE in check.stderr
        assert run("/etc/init.d/nginx", "reload", check=False).returncode != 0
        assert get("/")[0] == 200
    run("/etc/init.d/nginx", "reload")
    assert get("/")[0] == 200


def test_a_missing_certificate_is_named_and_nginx_keeps_serving(gateway, certificate):
    missing = "/etc/ssl/certs/no-such-gateway-cert.pem"
    with AdminEdit(TLS_CONF, certificate[0], missing):
        check = run("/usr/share/nova-uwsgi-gateway/check-config", check=False)
        assert check.returncode == 1 and missing in check.stderr
        assert run("/etc/init.d/nginx", "reload", check=False).returncode != 0
        assert get("/")[0] == 200
    assert run("/usr/share/nova-uwsgi-gateway/check-config").returncode == 0


def test_a_listen_port_taken_by_another_program_is_named(gateway):
    # nginx holds 8774 itself, so the admin moves the site to a port another program has.
    squatter = subprocess.Popen(
        ["python3", "-c", "import socket, time; s = socket.socket(); "
         "s.bind(('0.0.0.0', 8775)); s.listen(); time.sleep(60)"])
    try:
        wait_until(lambda: run("ss", "-Hltn", "sport = :8775").stdout.strip(),
                   "the other program to listen on 8775", timeout=10)
        with AdminEdit(SITE, "listen 8774 ssl;", "listen 8775 ssl;"):
            check = run("/usr/share/nova-uwsgi-gateway/check-config", check=False)
            assert check.returncode == 1
            assert "port 8775" in check.stderr and SITE_LINK in check.stderr
            assert f"python3 (pid {squatter.pid})" in check.stderr
            # nginx cannot bind 8775 and keeps serving its old config.
            run("/etc/init.d/nginx", "reload", check=False)
            time.sleep(1)
            assert get("/")[0] == 200
    finally:
        squatter.kill()
        squatter.wait()
    run("/etc/init.d/nginx", "reload")
    wait_until(lambda: get("/")[0] == 200, "nginx to serve 8774 after the admin's fix")


def test_a_vassal_whose_zerg_server_is_in_no_pool_is_named(gateway):
    vassal = os.path.realpath(VASSAL_LINK)
    with AdminEdit(vassal, "zerg = /run/nova-uwsgi-gateway/pool/osapi_compute",
                   "zerg = /run/nova-uwsgi-gateway/pool/nowhere"):
        check = run("/usr/share/nova-uwsgi-gateway/check-config", check=False)
        assert check.returncode == 1
        assert VASSAL_LINK in check.stderr
        assert "zerg server /run/nova-uwsgi-gateway/pool/nowhere" in check.stderr
    assert run("/usr/share/nova-uwsgi-gateway/check-config").returncode == 0
    # The emperor restarts the vassal with its file put back.
    wait_until(lambda: get("/")[0] == 200, "the vassal to serve again", timeout=90)


def test_remove_stops_serving_8774_and_gives_nova_api_back(gateway):
    assert get("/")[0] == 200, "the gateway must be serving before the removal"
    apt("remove", PKG)

    assert not os.path.lexists(SITE_LINK)
    assert not os.path.lexists(VASSAL_LINK)
    assert nova_api_enabled(), "nova-api not re-enabled on remove"

    def gateway_gone():
        try:
            get("/")
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return True
        return False
    wait_until(gateway_gone, "TLS on :8774 to stop answering")

    def no_gateway_process():
        return not [p for p in processes()
                    if "/etc/nova-uwsgi-gateway/" in p[3] or "osapi_compute.ini" in p[3]]
    wait_until(no_gateway_process, "the emperor and its vassal to stop on remove")


def test_purge_leaves_no_file_of_the_package():
    apt("purge", PKG)
    ours = [p for p in INSTALLED_FILES if "nova-uwsgi-gateway" in p or "nova_uwsgi_gateway" in p]
    made = ["/var/lib/nova-uwsgi-gateway", "/var/log/nova-uwsgi-gateway",
            "/run/nova-uwsgi-gateway", "/run/nova-uwsgi-gateway.pid",
            "/run/nova-uwsgi-gateway-stats", "/var/log/nginx/nova-uwsgi-gateway-access.log",
            SITE_LINK, "/etc/nova-uwsgi-gateway"]
    left = [p for p in ours + made if os.path.lexists(p)]
    assert ours and not left, left
