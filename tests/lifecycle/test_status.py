"""nova-uwsgi-gateway-status on a host with the packages installed: each layer that fails
gives the exit status a monitoring plugin would, and the line that names the cause.

The module's host begins as a cloud image some are: ssl-cert's snakeoil pair deleted.
"""
import datetime
import json
import re

import pytest

from lifecycle_testbed import CA, CERT, KEY, vassal

STATE = {"OK": 0, "WARNING": 1, "CRITICAL": 2, "UNKNOWN": 3}
SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")
SERVERS = (f"curl -sS -o /dev/null -w '%{{http_code}}\\n' -m 60 --cacert {CA} "
           "-H 'X-Auth-Token: admin:admin' https://127.0.0.1:8774/v2.1/servers")


def status(testbed, args="", user=None):
    """(exit status, output) of the command, as root or as ``user``."""
    command = f"nova-uwsgi-gateway-status {args}"
    proc = testbed.run(f"runuser -u {user} -- {command}" if user else command, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def line(output, state, layer, name):
    """The line of one check, which must be there."""
    found = [text for text in output.splitlines() if text.startswith(f"{state} {layer} {name}:")]
    assert found, f"no {state} {layer} {name} line in:\n{output}"
    return found[0]


def use_certificate(testbed, cert, key):
    """The admin's edit of tls.conf to another pair, and nginx's reload."""
    testbed.run(f"sed -i 's|^ssl_certificate .*|ssl_certificate {cert};|; "
                f"s|^ssl_certificate_key .*|ssl_certificate_key {key};|' "
                "/etc/nova-uwsgi-gateway/nginx/tls.conf && invoke-rc.d nginx reload")


def serving(testbed):
    testbed.wait_until(f"curl -sf -o /dev/null -m 5 --cacert {CA} https://127.0.0.1:8774/",
                       ":8774 to serve", 90)


@pytest.fixture(scope="module")
def install(testbed):
    """apt's output when it installed the gateway on a host without the snakeoil pair."""
    testbed.run("rm -f " + " ".join(SNAKEOIL))
    return testbed.apt("install nova-uwsgi-gateway").stdout


@pytest.fixture
def gateway(testbed, install):
    """The installed gateway with the testbed's certificate for 127.0.0.1, serving."""
    use_certificate(testbed, CERT, KEY)
    serving(testbed)
    return testbed


def test_a_host_without_the_snakeoil_pair_serves_after_apt_install_and_says_so(testbed,
                                                                               install):
    assert "ssl-cert's default certificate, which is missing" in install, install
    testbed.run("test -s {} && test -s {}".format(*SNAKEOIL))
    # Readiness: apt's run ends by saying whether the site answers.
    assert re.search(r"nova-uwsgi-gateway: https://127\.0\.0\.1:8774/ \(nova-uwsgi-gateway\) "
                     r"answers 200", install), install
    testbed.run("curl -sf -o /dev/null -k https://127.0.0.1:8774/")


def test_snakeoil_in_use_is_a_warning(testbed, install):
    use_certificate(testbed, *SNAKEOIL)
    code, out = status(testbed)
    assert code == STATE["WARNING"], out
    assert "is ssl-cert's self-signed snakeoil" in line(out, "WARNING", "certificate",
                                                         "nova-uwsgi-gateway")
    assert out.startswith("NOVA-UWSGI-GATEWAY WARNING: certificate nova-uwsgi-gateway:"), out


def test_healthy_is_ok_and_json_holds_the_same_facts(gateway):
    code, out = status(gateway)
    assert code == STATE["OK"], out
    assert out.startswith("NOVA-UWSGI-GATEWAY OK: 1 site(s) answer, 1 vassal(s) serve"), out
    assert "running" in line(out, "OK", "nginx", "nginx")
    assert "running" in line(out, "OK", "emperor", "emperor")
    assert re.search(r"2 workers \(\d busy, \d idle\), \d+ requests, 0 exceptions",
                     line(out, "OK", "vassal", "osapi_compute"))
    assert "answers 200" in line(out, "OK", "site", "nova-uwsgi-gateway")
    assert f"{CERT} valid for" in line(out, "OK", "certificate", "nova-uwsgi-gateway")

    code, out = status(gateway, "--json")
    report = json.loads(out)
    assert code == 0 and report["state"] == "OK" and report["exit_status"] == 0, out
    checks = {(c["layer"], c["name"]): c for c in report["checks"]}
    compute = checks["vassal", "osapi_compute"]
    assert compute["workers"] == 2 and compute["listen_backlog"] == 1024, compute
    assert checks["site", "nova-uwsgi-gateway"]["status"] == 200
    assert checks["certificate", "nova-uwsgi-gateway"]["days_left"] > 0


def test_the_monitoring_user_in_group_nova_needs_no_root(gateway):
    gateway.run("id monitor >/dev/null 2>&1 || useradd --system --groups nova monitor")
    code, out = status(gateway, user="monitor")
    assert code == STATE["OK"], out
    assert "nginx -t skipped" in line(out, "OK", "config", "check-config")
    assert "2 workers" in line(out, "OK", "vassal", "osapi_compute")
    # Without group nova the stats sockets are closed to it, and it says so.
    gateway.run("id nobody-else >/dev/null 2>&1 || useradd --system nobody-else")
    code, out = status(gateway, user="nobody-else")
    assert code == STATE["UNKNOWN"], out
    assert "run as root or as a member of group nova" in line(out, "UNKNOWN", "emperor",
                                                              "emperor")


def certificate(testbed, name, not_before, not_after):
    """A certificate for 127.0.0.1 valid between two times, written into the testbed."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import ipaddress
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "127.0.0.1")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(not_before).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    paths = f"/etc/ssl/lifecycle/{name}.pem", f"/etc/ssl/lifecycle/{name}.key"
    testbed.path(paths[0]).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    testbed.path(paths[1]).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption()))
    return paths


def test_a_certificate_expiring_in_10_days_is_a_warning(gateway):
    now = datetime.datetime.now(datetime.timezone.utc)
    use_certificate(gateway, *certificate(gateway, "ten-days", now, now + datetime.timedelta(10)))
    code, out = status(gateway)
    assert code == STATE["WARNING"], out
    assert "expires in 10 days" in line(out, "WARNING", "certificate", "nova-uwsgi-gateway")


def test_an_expired_certificate_is_critical(gateway):
    now = datetime.datetime.now(datetime.timezone.utc)
    use_certificate(gateway, *certificate(gateway, "expired", now - datetime.timedelta(40),
                                          now - datetime.timedelta(1)))
    code, out = status(gateway)
    assert code == STATE["CRITICAL"], out
    assert "/etc/ssl/lifecycle/expired.pem expired on" in line(out, "CRITICAL", "certificate",
                                                               "nova-uwsgi-gateway")


def test_a_vassal_whose_app_cannot_load_is_critical_naming_it_and_novas_error(gateway):
    gateway.run("chmod 0600 /etc/nova/nova.conf")  # nova (the vassal's user) cannot read it
    try:
        # The emperor restarts a vassal whose file changed: it cannot load nova now.
        gateway.run("touch /etc/nova-uwsgi-gateway/vassals-available/osapi_compute.ini")
        gateway.wait_until("nova-uwsgi-gateway-status --timeout 2 | "
                           "grep -q '^CRITICAL vassal osapi_compute:'", "the vassal to fail", 60)
        code, out = status(gateway, "--timeout 2")
        ready_code, ready = status(gateway, "--ready")
    finally:
        gateway.run("chmod 0640 /etc/nova/nova.conf")
    assert code == STATE["CRITICAL"], out
    said = line(out, "CRITICAL", "vassal", "osapi_compute")
    assert re.search(r"not (running|serving)", said) and "cannot load 'osapi_compute'" in said \
        and "cannot read /etc/nova/nova.conf: Permission denied" in said, said
    # The readiness line names the same cause.
    assert ready_code == STATE["CRITICAL"], ready
    assert re.search(r"does not answer: vassal osapi_compute: not (running|serving)", ready), ready
    serving(gateway)


def test_the_emperor_stopped_is_critical_and_start_says_the_site_answers(gateway):
    gateway.run("service nova-uwsgi-gateway stop")
    try:
        code, out = status(gateway)
    finally:
        mark = gateway.log_mark()
        started = gateway.run("service nova-uwsgi-gateway start")
    assert code == STATE["CRITICAL"], out
    assert "not running" in line(out, "CRITICAL", "emperor", "emperor")
    assert "not asked: the emperor is not running" in line(out, "CRITICAL", "site",
                                                           "nova-uwsgi-gateway")
    said = started.stdout + gateway.gateway_log(since=mark)
    assert "https://127.0.0.1:8774/ (nova-uwsgi-gateway) answers 200" in said, said


def test_nginx_stopped_is_critical(gateway):
    gateway.run("service nginx stop")
    try:
        code, out = status(gateway)
    finally:
        gateway.run("service nginx start")
    assert code == STATE["CRITICAL"], out
    assert out.startswith("NOVA-UWSGI-GATEWAY CRITICAL: nginx nginx: not running"), out


LOCK_DB = """
import os, sqlite3, time
db = sqlite3.connect("/var/lib/nova/nova_api.sqlite", isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
for _ in range(600):
    if os.path.exists("/var/tmp/unlock"):
        break
    time.sleep(0.1)
"""


def busy_workers(testbed):
    code, out = status(testbed, "--json")
    checks = json.loads(out)["checks"]
    return [c for c in checks if c["name"] == "osapi_compute"][0]["busy_workers"]


def test_a_busy_worker_and_a_filling_listen_queue_are_reported_with_their_numbers(gateway):
    """One request held in nova (its database locked, then its worker stopped), both
    workers stopped, and 12 more requests waiting in the socket's queue."""
    gateway.run("rm -f /var/tmp/unlock /var/tmp/lock.log")
    gateway.path("/usr/local/lib/lock-db.py").write_text(LOCK_DB)
    lock = gateway.popen("exec python3 /usr/local/lib/lock-db.py",
                         open(gateway.path("/var/tmp/lock.log"), "w"))
    clients = []
    _, workers = vassal(gateway)
    try:
        gateway.wait_until("grep -q locked /var/tmp/lock.log", "the database lock", 10)
        clients.append(gateway.popen(SERVERS, open(gateway.path("/var/tmp/held.log"), "w")))
        for _ in range(40):
            if busy_workers(gateway):
                break
        else:
            pytest.fail("no worker took the request")
        gateway.run("kill -STOP " + " ".join(map(str, workers)))
        gateway.run("touch /var/tmp/unlock")
        lock.wait(timeout=10)
        for number in range(12):
            clients.append(gateway.popen(SERVERS, open(gateway.path(f"/var/tmp/q{number}.log"),
                                                       "w")))
        gateway.wait_until("[ $(ss -Hxl src /run/nova-uwsgi-gateway/osapi_compute.sock | "
                           "awk '{print $3}') -ge 12 ]", "12 requests in the queue", 20)
        gateway.run("sleep 2")
        code, out = status(gateway, "--busy-warning 2 --queue-warning 10 --timeout 2")
    finally:
        gateway.run(f"touch /var/tmp/unlock; kill -CONT {' '.join(map(str, workers))}",
                    check=False)
        for client in [lock, *clients]:
            client.wait(timeout=90)
    said = line(out, "WARNING", "vassal", "osapi_compute")
    assert re.search(r"worker \d \(pid \d+\) busy for \d+ s on GET /v2\.1/servers", said), said
    queued = re.search(r"listen queue (\d+) of 1024: requests wait for a free worker", said)
    assert queued and int(queued.group(1)) >= 12, said
    # Nothing takes a request while both workers stand still: the site does not answer.
    assert code == STATE["CRITICAL"], out
    assert "does not answer" in line(out, "CRITICAL", "site", "nova-uwsgi-gateway")
    assert gateway.path("/var/tmp/held.log").read_text().strip() == "200"


def test_the_access_log_line_carries_novas_request_id(gateway):
    mark = gateway.log_mark()
    headers = gateway.run(f"curl -sS -D - -o /dev/null --cacert {CA} "
                          "-H 'X-Auth-Token: admin:admin' https://127.0.0.1:8774/v2.1/flavors"
                          ).stdout
    request_id = re.search(r"(?im)^x-openstack-request-id: (req-[0-9a-f-]+)", headers).group(1)
    access = gateway.run(f"grep -F {request_id} /var/log/nginx/nova-uwsgi-gateway-access.log"
                         ).stdout
    assert f'request_id="{request_id}" upstream="unix:/run/nova-uwsgi-gateway/osapi_compute' \
        f'.sock" upstream_status="200"' in access, access
    assert '"GET /v2.1/flavors HTTP/1.1" 200' in access, access
    assert request_id in gateway.gateway_log(since=mark)
