"""nova-uwsgi-gateway-metadata as an operator meets it, on the testbed it was installed on.

Real nova (python3-nova, throwaway sqlite + noauth2 config with neutron's metadata
proxy settings), real uWSGI, real nginx, TLS verified against a CA made here. The
requests are what neutron's metadata agent sends; neutron itself, which nova asks for
an instance's ports, is the loopback stand-in (standin.py, next to this file).
The tests run in file order: install, serve, remove, purge.
"""
import glob
import hashlib
import hmac
import os
import sqlite3
import ssl
import subprocess
import sys
import urllib.request

import pytest

from testbed import (CA, EMPEROR_LOG, apt, log_tail, nova_configured, processes, run,
                     start_gateway, use_certificate, wait_until)

PKG = "nova-uwsgi-gateway-metadata"
BASE = "https://127.0.0.1:8775"
NOVA = "https://127.0.0.1:8774"
SECRET = "metadata-autopkgtest-secret"
PROJECT = "c0ffee"
VASSAL_LINK = "/etc/nova-uwsgi-gateway/vassals-enabled/metadata.ini"
SITE_LINK = "/etc/nginx/sites-enabled/nova-uwsgi-gateway-metadata.conf"
STANDIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "standin.py")
# neutron's side of the metadata proxy, and where nova finds "neutron" (the stand-in).
NOVA_METADATA = """\
[api]
auth_strategy = noauth2
[neutron]
service_metadata_proxy = true
metadata_proxy_shared_secret = {secret}
endpoint_override = http://127.0.0.1:{port}
auth_type = none
"""
# An instance in the cell database and its mapping, made with nova's own objects.
MAKE_INSTANCE = """
import sys, uuid
from nova import config, context, objects
from nova.network import model
config.parse_args([], default_config_files=["/etc/nova/nova.conf"])
objects.register_all()
admin = context.get_admin_context()
cell = next(c for c in objects.CellMappingList.get_all(admin) if c.name == "cell1")
flavor = objects.Flavor(context=admin, name="metadata-test", memory_mb=64, vcpus=1,
                        root_gb=1, ephemeral_gb=0, swap=0, flavorid="metadata-test")
flavor.create()
instance_uuid = str(uuid.uuid4())
with context.target_cell(admin, cell) as cell_context:
    objects.Instance(
        context=cell_context, uuid=instance_uuid, project_id=sys.argv[1],
        user_id="metadata-test", hostname="metadata-test", display_name="metadata-test",
        host="metadata-test", vm_state="active", power_state=1,
        flavor=flavor, old_flavor=None, new_flavor=None, instance_type_id=flavor.id,
        memory_mb=64, vcpus=1, root_gb=1, ephemeral_gb=0, metadata={}, system_metadata={},
        info_cache=objects.InstanceInfoCache(network_info=model.NetworkInfo()),
        launch_index=0, availability_zone="nova").create()
objects.InstanceMapping(context=admin, instance_uuid=instance_uuid, cell_mapping=cell,
                        project_id=sys.argv[1]).create()
print(instance_uuid)
"""

# Filled by the tests and fixtures, read by later tests.
NOVA_ETC = {}          # sha256 of every file in /etc/nova once nova is set up
INSTALLED_FILES = []   # what dpkg listed for the package after installation


def etc_nova():
    digests = {}
    for path in sorted(glob.glob("/etc/nova/**", recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as f:
                digests[path] = hashlib.sha256(f.read()).hexdigest()
    return digests


def agent_headers(instance_id, signature=None, forwarded_for="192.0.2.10"):
    """What neutron's metadata agent adds to an instance's request."""
    if signature is None:
        signature = hmac.new(SECRET.encode(), instance_id.encode(), hashlib.sha256).hexdigest()
    return {"X-Instance-ID": instance_id, "X-Tenant-ID": PROJECT,
            "X-Forwarded-For": forwarded_for, "X-Instance-ID-Signature": signature}


def get(path, headers=None, base=BASE):
    """(status, body) of an HTTPS request verified against the test CA."""
    req = urllib.request.Request(base + path, headers=headers or {})
    ctx = ssl.create_default_context(cafile=CA)
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def enabled(service):
    return bool(glob.glob(f"/etc/rc[2345].d/S*{service}"))


@pytest.fixture(scope="module", autouse=True)
def standin():
    """The neutron stand-in on a free loopback port, for the whole module."""
    log = open(os.path.join(os.environ.get("AUTOPKGTEST_TMP", "/tmp"), "standin.log"), "w")
    proc = subprocess.Popen([sys.executable, STANDIN, "0"], text=True,
                            stdout=subprocess.PIPE, stderr=log)
    port = int(proc.stdout.readline())
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    log.close()


@pytest.fixture(scope="module", autouse=True)
def metadata_nova(standin):
    with nova_configured(NOVA_METADATA.format(secret=SECRET, port=standin)):
        NOVA_ETC.update(etc_nova())
        yield


def test_install_takes_8775_from_nova_api_metadata():
    # Start from a host where Debian's nova-api-metadata is installed and enabled.
    apt("purge", PKG)
    run("update-rc.d", "nova-api-metadata", "enable")
    assert enabled("nova-api-metadata")

    apt("install", PKG)

    assert os.path.islink(VASSAL_LINK) and os.path.exists(VASSAL_LINK)
    assert os.path.islink(SITE_LINK) and os.path.exists(SITE_LINK)
    assert not enabled("nova-api-metadata"), "nova-api-metadata still enabled after install"
    assert os.path.exists("/var/lib/nova-uwsgi-gateway-metadata/disabled-nova-api-metadata")
    INSTALLED_FILES.extend(run("dpkg", "-L", PKG).stdout.split())


@pytest.fixture(scope="module")
def instance():
    """An instance of PROJECT in nova's database; its uuid."""
    return run("runuser", "-u", "nova", "--", sys.executable, "-c", MAKE_INSTANCE,
               PROJECT).stdout.split()[-1]


@pytest.fixture(scope="module")
def gateway(certificate, instance):
    """The admin points tls.conf at the real certificate; both services start."""
    use_certificate(*certificate)
    start_gateway()
    wait_until(lambda: get("/")[0] == 200, "GET / on 8775 to answer 200 through nginx")


def test_the_version_list_is_served_over_tls(gateway):
    status, body = get("/")
    assert status == 200, body
    assert "latest" in body.split() and "2009-04-04" in body.split()


def test_the_openstack_versions_are_served_to_the_agent(gateway, instance):
    status, body = get("/openstack", agent_headers(instance))
    assert status == 200, body
    assert "latest" in body.split() and "2012-08-10" in body.split()


def test_an_instance_gets_its_own_metadata(gateway, instance):
    status, body = get("/openstack/latest/meta_data.json", agent_headers(instance))
    assert status == 200, body
    assert f'"uuid": "{instance}"' in body
    status, body = get("/latest/meta-data/", agent_headers(instance))
    assert status == 200, body
    assert "instance-id" in body.split()


def test_a_wrong_signature_is_403_and_names_the_agents_forwarded_address(gateway, instance):
    status, body = get("/openstack/latest/meta_data.json",
                       agent_headers(instance, signature="0" * 64, forwarded_for="192.0.2.77"))
    assert status == 403, body
    # nova logs the instance's address the agent forwarded: X-Forwarded-For reached it.
    wait_until(lambda: "Request From: 192.0.2.77" in log_tail(EMPEROR_LOG, 20000),
               "nova's log line naming the forwarded address", timeout=10)


def test_an_unknown_instance_with_a_valid_signature_is_404(gateway):
    status, body = get("/openstack/latest/meta_data.json",
                       agent_headers("00000000-0000-0000-0000-000000000000"))
    assert status == 404, body


def test_a_request_without_the_agents_headers_gets_novas_own_answer(gateway):
    status, body = get("/openstack/latest/meta_data.json")
    print(status, body)
    assert status not in (502, 504), body
    assert status == 400 and "X-Instance-ID header is missing" in body


def test_nova_records_no_service_of_its_own_for_the_metadata_vassal(gateway):
    # nova's own initialisation records "nova-metadata", which nova's API hides.
    with sqlite3.connect("/var/lib/nova/test-nova.sqlite") as db:
        binaries = {row[0] for row in db.execute("SELECT binary FROM services")}
    print(binaries)
    assert binaries <= {"nova-osapi_compute", "nova-metadata"}, binaries


def test_remove_stops_8775_gives_nova_api_metadata_back_and_8774_keeps_serving(gateway):
    assert get("/")[0] == 200, "the metadata site must be serving before the removal"
    apt("remove", PKG)

    assert not os.path.lexists(VASSAL_LINK) and not os.path.lexists(SITE_LINK)
    assert enabled("nova-api-metadata"), "nova-api-metadata not re-enabled on remove"

    def metadata_vassal_gone():
        return not [p for p in processes() if "metadata.ini" in p[3]]
    wait_until(metadata_vassal_gone, "the metadata vassal to stop on remove")
    assert get("/", base=NOVA)[0] == 200, "8774 stopped serving with the add-on's removal"


def test_purge_leaves_no_file_of_the_package_and_etc_nova_untouched():
    apt("purge", PKG)
    ours = [p for p in INSTALLED_FILES if "metadata" in p]
    made = ["/var/lib/nova-uwsgi-gateway-metadata", "/etc/nova-uwsgi-gateway-metadata",
            VASSAL_LINK, SITE_LINK, "/run/nova-uwsgi-gateway/metadata.fifo"]
    left = [p for p in ours + made if os.path.lexists(p)]
    assert ours and not left, left
    assert etc_nova() == NOVA_ETC
