"""Slow, huge and malformed requests: nginx answers them, uWSGI never sees a crash.

All clients run inside the testbed against the installed gateway over TLS.
"""
import pytest

from lifecycle_testbed import CA, use_test_certificate, vassal

BEFORE = []  # the vassal's master and workers before any hostile client

# Inside the testbed: COUNT TLS connections that send half a request and then
# a header line every 5 s (slowloris), "ready" once all are open.
SLOWLORIS = """
import socket, ssl, sys, time
context = ssl.create_default_context(cafile=sys.argv[1])
conns = []
for _ in range(int(sys.argv[2])):
    conn = context.wrap_socket(socket.create_connection(("127.0.0.1", 8774)),
                               server_hostname="127.0.0.1")
    conn.sendall(b"GET /v2.1/flavors HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\n")
    conns.append(conn)
print("ready", flush=True)
while True:
    time.sleep(5)
    for conn in conns:
        conn.sendall(b"X-a: b\\r\\n")
"""
# Inside the testbed: send argv[2] (with \\r\\n escapes) raw over TLS, print the status line.
RAW = """
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
with context.wrap_socket(socket.create_connection(("127.0.0.1", 8774)),
                         server_hostname="127.0.0.1") as conn:
    conn.sendall(sys.argv[2].encode().decode("unicode_escape").encode())
    print(conn.recv(4096).decode(errors="replace").splitlines()[0])
"""


@pytest.fixture(scope="module", autouse=True)
def gateway(testbed):
    testbed.apt("install nova-uwsgi-gateway")
    use_test_certificate(testbed)
    testbed.wait_until(f"curl -sfS -o /dev/null --cacert {CA} https://127.0.0.1:8774/", "8774")
    testbed.path("/usr/local/lib/slowloris.py").write_text(SLOWLORIS)
    testbed.path("/usr/local/lib/raw.py").write_text(RAW)
    BEFORE.extend(vassal(testbed))


def request(testbed, path, extra=""):
    """(status, body) from curl; a request that takes over 1 s fails."""
    proc = testbed.run(f"curl -sS --max-time 1 --cacert {CA} -H 'X-Auth-Token: admin:admin' "
                       f"-o /var/tmp/body -w '%{{http_code}}' {extra} "
                       f"https://127.0.0.1:8774{path}", check=False)
    return proc.stdout.strip(), testbed.path("/var/tmp/body").read_text(errors="replace")


def test_200_slow_clients_do_not_keep_a_normal_client_from_its_answer(testbed):
    with open(testbed.path("/var/tmp/slowloris.out"), "w") as out:
        slow = testbed.popen(f"exec python3 /usr/local/lib/slowloris.py {CA} 200", out)
        try:
            testbed.wait_until("grep -q ready /var/tmp/slowloris.out", "200 slow connections", 60)
            status, body = request(testbed, "/v2.1/flavors")
        finally:
            slow.kill()
    assert status == "200", body


def test_a_32_KiB_token_gets_novas_answer(testbed):
    token = "a" * 32 * 1024
    status, body = request(testbed, "/v2.1/flavors",
                           f"-H 'X-Auth-Token: {token}'")
    assert status not in ("400", "431", "502"), body
    assert body.startswith("{"), f"not nova's JSON answer: {body[:300]}"


def test_a_header_past_what_uwsgi_can_carry_is_a_clean_400(testbed):
    token = "a" * 70 * 1024
    status, body = request(testbed, "/v2.1/flavors", f"-H 'X-Auth-Token: {token}'")
    assert status in ("400", "431"), f"{status}: {body[:300]}"


def test_a_body_over_the_limit_is_413(testbed):
    testbed.run("head -c 200000 /dev/zero > /var/tmp/big")
    status, body = request(testbed, "/v2.1/flavors",
                           "-X POST -H 'Content-Type: application/json' --data-binary @/var/tmp/big")
    assert status == "413", body


def test_a_malformed_request_line_is_400(testbed):
    line = testbed.run(f"python3 /usr/local/lib/raw.py {CA} 'NOT A REQUEST\\r\\n\\r\\n'").stdout
    assert line.startswith("HTTP/1.1 400"), line


def test_none_of_this_reached_uwsgi_as_a_crash(testbed):
    assert list(vassal(testbed)) == BEFORE, "the vassal's master or workers changed"
    log = testbed.gateway_log()
    for crash in ("invalid request block size", "Segmentation fault", "DAMN ! worker"):
        assert crash not in log
