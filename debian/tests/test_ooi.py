"""ooi-uwsgi-gateway as an operator meets it, on the testbed it was installed on.

Real nova (python3-nova, throwaway sqlite config with keystone auth), real ooi,
real uWSGI, real nginx, real clients (the openstack CLI), TLS verified against a
CA made here. Keystone, glance and neutron are a loopback stand-in
(standin.py, next to this file): ooi's query interface makes nova call glance
and neutron with the user's token, which nova's noauth2 never has.
The tests run in file order: install, serve, fail and recover, remove, purge.
"""
import hashlib
import json
import os
import re
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from testbed import (CA, EMPEROR_LOG, apt, installed, log_tail, run,
                     start_gateway, throwaway_nova, use_certificate, vassal_masters,
                     wait_until)

PKG = "ooi-uwsgi-gateway"
PULLED_IN = ("nova-uwsgi-gateway", "python3-ooi")
NOVA = "https://127.0.0.1:8774"
OOI = "https://127.0.0.1:8787"
TOKEN = "ooi-autopkgtest-token"     # the stand-in keystone accepts any token
OOI_PASTE = "/etc/ooi-uwsgi-gateway/api-paste.ini"
OOI_VASSAL_LINK = "/etc/nova-uwsgi-gateway/vassals-enabled/ooi_api.ini"
OOI_SITE_LINK = "/etc/nginx/sites-enabled/ooi-uwsgi-gateway.conf"
NOVA_API_PASTE = "/etc/nova/api-paste.ini"
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin.py")
INFRA = "http://schemas.ogf.org/occi/infrastructure#"
# The stand-in (standin.py) plays keystone, glance and neutron.
NOVA_AUTH = """\
[api]
auth_strategy = keystone
[keystone_authtoken]
auth_type = none
endpoint = http://127.0.0.1:{port}/identity/v3
www_authenticate_uri = http://127.0.0.1:{port}/identity
auth_version = v3
[glance]
endpoint_override = http://127.0.0.1:{port}
auth_type = none
[neutron]
endpoint_override = http://127.0.0.1:{port}
auth_type = none
"""

# Filled by the tests and fixtures, read by later tests.
AT_START = {}          # sha256 of nova's api-paste.ini before anything ran
INSTALLED_FILES = []   # what dpkg listed for the package after installation


def sha256(path):
    with open(path, "rb") as data:
        return hashlib.sha256(data.read()).hexdigest()


def openstack(*args):
    """The openstack CLI against nova through the gateway, with our token."""
    out = run("openstack", "--os-auth-type", "admin_token",
              "--os-token", TOKEN, "--os-endpoint", f"{NOVA}/v2.1",
              "--os-cacert", CA, *args, "-f", "json").stdout
    return json.loads(out) if out.strip() else None


def request(url, headers=None, token=True, timeout=30):
    """(status, headers, body) of an HTTPS GET verified against the test CA."""
    headers = dict(headers or {})
    if token:
        headers["X-Auth-Token"] = TOKEN
    req = urllib.request.Request(url, headers=headers)
    ctx = ssl.create_default_context(cafile=CA)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read().decode(errors="replace")


def status_of(url, **kw):
    return request(url, **kw)[0]


def no_answer_within(url, seconds):
    """True if url gives no 200 within seconds: an error status, or none yet
    (a vassal that is down leaves requests waiting in the emperor's socket
    until nginx's uwsgi_read_timeout, then 504)."""
    try:
        return status_of(url, timeout=seconds) != 200
    except TimeoutError:
        return True


def unreachable(url):
    """True if nothing answers HTTPS at url (refused, reset, TLS failure)."""
    try:
        request(url)
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return True
    return False


def vassal_master(ini):
    """PID of the emperor's child running the vassal ``ini``, or None."""
    masters = vassal_masters(ini)
    assert len(masters) <= 1, masters
    return masters[0] if masters else None


def ooi_worker_alive():
    """The ooi vassal's master has a worker that is not a zombie."""
    master = vassal_master("ooi_api.ini")
    out = run("ps", "-eo", "pid=,ppid=,stat=").stdout
    return master is not None and any(
        ppid == master and not stat.startswith("Z")
        for pid, ppid, stat in (line.split() for line in out.splitlines()))


def categories(text):
    """Category renderings in text/plain: the part after 'Category: '."""
    return [line[len("Category: "):] for line in text.splitlines()
            if line.startswith("Category: ")]


def term(category):
    return category.split(";", 1)[0].strip()


@pytest.fixture(scope="module", autouse=True)
def nova_api_paste_sha256_at_start():
    """Before anything else: ooi-uwsgi-gateway must never edit nova's paste file."""
    AT_START["api-paste"] = sha256(NOVA_API_PASTE)
    print(NOVA_API_PASTE, "sha256 at start:", AT_START["api-paste"])


@pytest.fixture(scope="module")
def standin():
    """keystone, glance and neutron stand-in on a free loopback port."""
    log_path = os.path.join(os.environ.get("AUTOPKGTEST_ARTIFACTS", "/tmp"),
                            "standin.log")
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, STANDIN, "0"], text=True,
                            stdout=subprocess.PIPE, stderr=log)
    port = int(proc.stdout.readline())
    print("stand-in listening on 127.0.0.1:%d, log in %s" % (port, log_path))
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    log.close()
    print(log_tail(log_path, 4000))


@pytest.fixture(scope="module")
def keystone_nova(standin):
    """sqlite nova with keystone auth against the stand-in, restored afterwards."""
    saved = throwaway_nova(NOVA_AUTH.format(port=standin))
    yield
    with open("/etc/nova/nova.conf", "w") as conf:
        conf.write(saved)


def test_installing_ooi_uwsgi_gateway_pulls_in_nova_uwsgi_gateway_and_python3_ooi():
    # autopkgtest installed everything: start from a host without any of it.
    apt("purge", PKG, *PULLED_IN)
    assert not [p for p in (PKG, *PULLED_IN) if installed(p)]

    apt("install", PKG)

    assert [p for p in (PKG, *PULLED_IN) if not installed(p)] == []
    for link in (OOI_VASSAL_LINK, OOI_SITE_LINK):
        assert os.path.islink(link) and os.path.exists(link), link
    INSTALLED_FILES.extend(run("dpkg", "-L", PKG).stdout.split())


@pytest.fixture(scope="module")
def gateway(certificate, keystone_nova):
    """The admin points tls.conf at the real certificate; both services start."""
    use_certificate(*certificate)
    start_gateway()
    wait_until(lambda: status_of(f"{NOVA}/") == 200,
               "nova's GET / to answer 200 on 8774")
    wait_until(lambda: status_of(f"{OOI}/occi1.1/-/") == 200,
               "ooi's GET /occi1.1/-/ to answer 200 on 8787")


def test_occi_query_interface_is_served_over_tls_with_links_to_https_host_and_port(gateway):
    status, headers, body = request(f"{OOI}/occi1.1/-/")
    print(status, dict(headers), body, sep="\n")
    assert status == 200
    assert "OCCI/1.1" in headers.get("Server", ""), headers.get("Server")
    found = categories(body)
    assert any(c.startswith(f'compute; scheme="{INFRA}"; class="kind"') for c in found)
    bad = [c for c in found if not re.search(r'; scheme="[^"]+"', c)
           or not re.search(r'; class="(kind|mixin|action)"', c)]
    assert bad == []
    locations = re.findall(r'location="([^"]*)"', body)
    assert locations
    assert [u for u in locations if not u.startswith(f"{OOI}/")] == []


def test_text_occi_rendering_gives_the_same_categories_as_headers(gateway):
    plain = {term(c) for c in categories(request(f"{OOI}/occi1.1/-/")[2])}
    status, headers, body = request(f"{OOI}/occi1.1/-/", {"Accept": "text/occi"})
    print(status, headers, body, sep="\n")
    assert status == 200
    # One header per category, or several in one header separated by commas.
    rendered = [part for value in headers.get_all("Category", [])
                for part in re.split(r",\s*(?=[\w.-]+;\s*scheme=)", value)]
    assert {term(c) for c in rendered} == plain
    assert "compute" in plain


def test_a_request_without_credentials_is_refused_with_a_4xx(gateway):
    status, headers, body = request(f"{OOI}/occi1.1/-/", token=False)
    print(status, dict(headers), body, sep="\n")
    assert 400 <= status < 500, status


def test_a_token_without_a_project_gets_ooi_s_own_error_not_a_500(gateway):
    status, headers, body = request(f"{OOI}/occi1.1/-/",
                                    {"X-Auth-Token": "unscoped-token"}, token=False)
    print(status, dict(headers), body, sep="\n")
    assert status == 403, status
    assert "OCCI/1.1" in headers.get("Server", "")
    assert "project" in body.lower()


def test_no_servers_in_ooi_compute_collection_and_the_openstack_cli_agrees(gateway):
    status, headers, body = request(f"{OOI}/occi1.1/compute/")
    print(status, dict(headers), body, sep="\n")
    assert status == 204
    assert openstack("server", "list") == []


def test_ooi_leaves_no_service_record_in_nova(gateway):
    services = openstack("compute", "service", "list")
    print(services)
    assert [s for s in services if "ooi" in json.dumps(s)] == []
    # nova's API may not list API services: look where nova writes them.
    with sqlite3.connect("/var/lib/nova/test-nova.sqlite") as db:
        binaries = [row[0] for row in db.execute("SELECT binary FROM services")]
    print("services table:", binaries)
    assert "nova-osapi_compute" in binaries, "nova records its API, so this check can see"
    assert [b for b in binaries if "ooi" in b] == []


def test_a_broken_ooi_paste_file_is_one_emperor_log_line_and_nova_keeps_serving(gateway):
    good = open(OOI_PASTE).read()
    broken = good.replace(" occi osapi_compute_app_v21", " occi nosuchfilter osapi_compute_app_v21")
    assert broken != good
    start = os.path.getsize(EMPEROR_LOG)
    nova_master = vassal_master("osapi_compute.ini")

    def new_log():
        with open(EMPEROR_LOG, errors="replace") as log:
            log.seek(start)
            return log.read()

    def shim_lines():
        return [line for line in new_log().splitlines()
                if line.startswith("nova-uwsgi-gateway: cannot load 'ooi_api': ")]

    try:
        with open(OOI_PASTE, "w") as paste:        # the admin's mistake
            paste.write(broken)
        run("touch", OOI_VASSAL_LINK)              # the emperor reloads the vassal
        wait_until(shim_lines, "the emperor log to say why ooi_api cannot load")
        assert no_answer_within(f"{OOI}/occi1.1/-/", 5)
        assert status_of(f"{NOVA}/") == 200
        assert status_of(f"{NOVA}/v2.1/servers") == 200
    finally:
        with open(OOI_PASTE, "w") as paste:
            paste.write(good)
    print(new_log())
    lines = shim_lines()
    # One line per load attempt, naming the cause; no traceback.
    assert "nosuchfilter" in lines[0], lines[0]
    assert set(lines) == {lines[0]}, lines
    assert "Traceback" not in new_log()
    assert vassal_master("osapi_compute.ini") == nova_master

    time.sleep(1.1)                                # a later mtime than the broken file's
    repaired = os.path.getsize(EMPEROR_LOG)
    run("touch", OOI_VASSAL_LINK)

    def emperor_saw_the_touch():
        # The emperor reloads the vassal, or starts it if it was between attempts.
        with open(EMPEROR_LOG, errors="replace") as log:
            log.seek(repaired)
            return re.search(r"\[emperor\] (reload the uwsgi instance ooi_api\.ini"
                             r"|vassal ooi_api\.ini has been spawned)", log.read())
    wait_until(emperor_saw_the_touch, "the emperor to act on the touched vassal")
    time.sleep(1)
    wait_until(lambda: status_of(f"{OOI}/occi1.1/-/") == 200 and ooi_worker_alive(),
               "ooi to answer 200 again once its paste file is repaired", timeout=150)
    print(new_log())
    assert status_of(f"{NOVA}/") == 200


def test_remove_stops_8787_while_nova_keeps_answering_on_8774(gateway):
    nova_master = vassal_master("osapi_compute.ini")
    assert nova_master and vassal_master("ooi_api.ini")
    polls = []
    stop = threading.Event()
    ctx = ssl.create_default_context(cafile=CA)

    def poll():
        while not stop.is_set():
            began = time.monotonic()
            try:
                with urllib.request.urlopen(f"{NOVA}/", context=ctx, timeout=10) as resp:
                    polls.append(resp.status)
            except urllib.error.HTTPError as err:
                polls.append(err.code)
            except Exception as err:             # anything else is a failed poll
                polls.append(repr(err))
            stop.wait(max(0.0, 0.05 - (time.monotonic() - began)))

    start = os.path.getsize(EMPEROR_LOG)
    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        apt("remove", PKG)
        wait_until(lambda: unreachable(f"{OOI}/occi1.1/-/"), "8787 to stop answering")
        wait_until(lambda: vassal_master("ooi_api.ini") is None, "the ooi vassal to stop")
        time.sleep(2)                              # and a little after
    finally:
        stop.set()
        poller.join(timeout=30)
    with open(EMPEROR_LOG, errors="replace") as log:
        log.seek(start)
        print(log.read())
    failed = [p for p in polls if p != 200]
    print(f"{len(polls)} polls of {NOVA}/, not 200: {failed}")
    assert len(polls) > 20
    assert failed == []
    assert not os.path.lexists(OOI_VASSAL_LINK)
    assert not os.path.lexists(OOI_SITE_LINK)
    assert vassal_master("osapi_compute.ini") == nova_master


def test_purge_leaves_no_file_of_the_package_and_novas_api_paste_ini_untouched(gateway):
    apt("purge", PKG)
    assert INSTALLED_FILES
    left = [p for p in INSTALLED_FILES
            if os.path.lexists(p) and (not os.path.isdir(p) or os.path.islink(p)
                                       or "ooi" in p)]
    made = ["/etc/ooi-uwsgi-gateway", "/var/lib/ooi-uwsgi-gateway",
            OOI_VASSAL_LINK, OOI_SITE_LINK, "/run/nova-uwsgi-gateway/ooi_api.fifo"]
    left += [p for p in made if os.path.lexists(p)]
    assert left == []
    assert sha256(NOVA_API_PASTE) == AT_START["api-paste"]
    assert status_of(f"{NOVA}/") == 200, "purging the add-on broke nova's gateway"
