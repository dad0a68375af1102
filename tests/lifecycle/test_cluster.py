"""Several API nodes behind one front end, each a host of its own on a private bridge.

db runs MariaDB for every node's nova; node1..node3 have nova-uwsgi-gateway-node,
node4 waits to be added; fe has nova-uwsgi-gateway-frontend and no nova (then ooi's
front end, with ooi on three of the four nodes). Clients
call the front end over TLS from fe's own network. The tests run in file order
and each leaves the nodes it does not take down serving.
"""
import re
import time

import pytest

from cluster_testbed import ADMIN, NODES_CONF, gateway_cluster, list_nodes
from lifecycle_testbed import CA, TOP, Load, upgrade_repository, vassal

FLAVORS = "/v2.1/flavors"
FAIL_TIMEOUT = 5  # seconds a failed node rests (the test's nodes.conf)
LINK = "/etc/nova-uwsgi-gateway-frontend/link"

# From a host on the bridge: a TLS client of a node's link, with a client certificate
# (argv[3], argv[4]) or none; sends argv[2] as a uwsgi packet, prints what came back.
LINK_CLIENT = """
import socket, ssl, sys
context = ssl.create_default_context()
context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
if len(sys.argv) > 4:
    context.load_cert_chain(sys.argv[3], sys.argv[4])
with socket.create_connection((sys.argv[1], 18774), timeout=5) as raw:
    try:
        with context.wrap_socket(raw, server_hostname="nova-api-node") as conn:
            # TLS 1.3 judges the client's certificate after the client's handshake is
            # done: wait for that verdict, or the packet may meet a reset that hides it.
            conn.settimeout(1)
            try:
                print("refused:", conn.recv(200) or "closed")
                sys.exit()
            except TimeoutError:
                conn.settimeout(5)
            conn.sendall(bytes.fromhex(sys.argv[2]))
            print("answer:", conn.recv(200))
    except (OSError, ssl.SSLError) as err:
        print("refused:", err)
"""
# The same packet over plain TCP: no TLS at all.
RAW_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], 18774), timeout=5) as conn:
    conn.sendall(bytes.fromhex(sys.argv[2]))
    try:
        print("answer:", conn.recv(200))
    except OSError as err:
        print("refused:", err)
"""
# A WSGI file that leaves a marker if uWSGI ever loads it.
EVIL = "open('/var/tmp/pwned', 'w').write('ran')\napplication = None\n"


def uwsgi_packet(variables):
    """A uwsgi request (modifier 0) carrying ``variables``, as hex for a command line."""
    body = b"".join(len(v).to_bytes(2, "little") + v
                    for key, value in variables.items() for v in (key.encode(), value.encode()))
    return (b"\0" + len(body).to_bytes(2, "little") + b"\0" + body).hex()


# GET / as nginx's site sends it.
GET = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/", "PATH_INFO": "/", "SCRIPT_NAME": "",
       "QUERY_STRING": "", "SERVER_PROTOCOL": "HTTP/1.1", "REQUEST_SCHEME": "https", "HTTPS": "on",
       "REMOTE_ADDR": "10.77.0.2", "SERVER_NAME": "fe", "SERVER_PORT": "8774", "HTTP_HOST": "fe"}


def attack_packet():
    return uwsgi_packet({**GET, "UWSGI_FILE": "/var/tmp/evil.py", "UWSGI_APPID": "evil",
                         "SCRIPT_NAME": "/evil"})


def served(node, since):
    """How many GET /v2.1/flavors nova on ``node`` answered since the log mark ``since``."""
    log = node.gateway_log(since)
    return len(re.findall(r'"GET /v2\.1/flavors" status: 200', log))


def client(cluster, path=FLAVORS, extra=""):
    """(status, body, seconds) of one request to the front end, from fe."""
    proc = cluster.fe.run(
        f"curl -sS --max-time 5 --cacert {CA} -H '{ADMIN}' -o /var/tmp/body "
        f"-w '%{{http_code}} %{{time_total}}' {extra} https://{cluster.fe.address}:8774{path}",
        check=False)
    status, seconds = (proc.stdout.split() + ["", "0"])[:2]
    return status, cluster.fe.path("/var/tmp/body").read_text(errors="replace"), float(seconds)


def load(cluster):
    return Load(cluster.fe, url=f"https://{cluster.fe.address}:8774{FLAVORS}", from_host=True)


@pytest.fixture(scope="module")
def cluster(init):
    with gateway_cluster("test_cluster", TOP / "dist", nodes=4, listed=3,
                         fail_timeout=FAIL_TIMEOUT) as cluster:
        yield cluster


def test_the_front_end_has_no_nova_and_serves_through_the_nodes_one_database(cluster):
    assert not cluster.fe.run("dpkg-query -W -f='${Package} ${Status}\\n' | "
                              "grep -i nova | grep -v nova-uwsgi-gateway-frontend",
                              check=False).stdout.strip()
    body = '{"flavor": {"name": "made-through-fe", "ram": 64, "vcpus": 1, "disk": 1}}'
    status, answer, _ = client(cluster, extra=f"-X POST -H 'Content-Type: application/json' "
                                              f"-d '{body}'")
    assert status == "200", answer
    # Every node's nova sees it: they share db's MariaDB (each node's own site on 8774).
    for node in cluster.nodes:
        listed = cluster.bridge.run(f"curl -sfk -H '{ADMIN}' "
                                    f"https://{node.address}:8774{FLAVORS}").stdout
        assert "made-through-fe" in listed, node.machine


def test_requests_spread_over_every_node(cluster):
    nodes = cluster.nodes[:3]
    marks = [node.log_mark() for node in nodes]
    with load(cluster) as running:
        time.sleep(10)
    counts = [served(node, mark) for node, mark in zip(nodes, marks)]
    print(f"per node: {counts} of {len(running.ok)} answered")
    assert not running.failed
    assert all(count >= len(running.ok) / 3 * 0.5 for count in counts), counts
    assert sum(counts) >= len(running.ok)


def test_a_node_link_without_the_front_ends_certificate_runs_no_code(cluster):
    node, outsider = cluster.nodes[0], cluster.db
    node.path("/var/tmp/evil.py").write_text(EVIL)
    node.run("chmod 644 /var/tmp/evil.py; rm -f /var/tmp/pwned")
    outsider.path("/usr/local/lib/link_client.py").write_text(LINK_CLIENT)
    outsider.path("/usr/local/lib/raw_client.py").write_text(RAW_CLIENT)
    packet = attack_packet()

    no_cert = outsider.run(f"python3 /usr/local/lib/link_client.py {node.address} {packet}")
    assert "refused:" in no_cert.stdout and "certificate required" in no_cert.stdout
    raw = outsider.run(f"python3 /usr/local/lib/raw_client.py {node.address} {packet}")
    assert "HTTP" not in raw.stdout
    # A certificate of another CA (made on fe, as an attacker could), and a node's own.
    cluster.fe.run("cd /root && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other "
                   "-keyout other.key -out other.pem 2>/dev/null")
    cluster.fe.path("/usr/local/lib/link_client.py").write_text(LINK_CLIENT)
    other = cluster.fe.run(f"python3 /usr/local/lib/link_client.py {node.address} {packet} "
                           "/root/other.pem /root/other.key")
    assert "refused:" in other.stdout
    # A node's own certificate is a server's: it opens no other node.
    peer = cluster.nodes[1]
    for name in ("node.pem", "node.key"):
        outsider.path(f"/root/peer-{name}").write_bytes(
            peer.path(f"/etc/nova-uwsgi-gateway-node/tls/{name}").read_bytes())
    as_node = outsider.run(f"python3 /usr/local/lib/link_client.py {node.address} {packet} "
                           "/root/peer-node.pem /root/peer-node.key")
    assert "refused:" in as_node.stdout
    time.sleep(1)
    assert node.run("test -e /var/tmp/pwned", check=False).returncode != 0, \
        "a uwsgi packet from outside the front end ran code on the node"
    # The front end's own certificate passes, through the same client: the probe is valid,
    # and the same packet from the front end's side would have run (why the key matters).
    fe_cert = cluster.fe.run(f"python3 /usr/local/lib/link_client.py {node.address} "
                             f"{uwsgi_packet(GET)} {LINK}/frontend.pem {LINK}/frontend.key")
    assert "answer:" in fe_cert.stdout and "HTTP/1.1" in fe_cert.stdout
    cluster.fe.run(f"python3 /usr/local/lib/link_client.py {node.address} {packet} "
                   f"{LINK}/frontend.pem {LINK}/frontend.key")
    assert node.run("test -e /var/tmp/pwned", check=False).returncode == 0, \
        "control: the packet did not run the file even from the front end's side"
    node.run("rm -f /var/tmp/pwned /var/tmp/evil.py")


def test_a_killed_vassal_master_on_a_node_fails_at_most_its_requests_in_flight(cluster):
    node = cluster.nodes[0]
    master, workers = vassal(node)
    since = node.log_mark()
    with load(cluster) as running:
        time.sleep(2)
        killed_at = time.time()
        node.run(f"kill -9 {master}")
        node.wait_for_workers(2, "the respawned vassal's workers", since)
        time.sleep(3)
    assert len(running.failed) <= len(workers), running.failed
    assert [t for t in running.ok if t > killed_at], "no 200 after the kill"
    assert vassal(node)[0] not in (None, master)


def test_a_cut_link_fails_a_bounded_number_of_requests_and_the_node_comes_back(cluster):
    node = cluster.nodes[1]
    link = cluster.bridge.link(node.machine)
    with load(cluster) as running:
        time.sleep(2)
        cluster.bridge.run(f"ip link set {link} down")
        cut_at = time.time()
        time.sleep(6)
        cluster.bridge.run(f"ip link set {link} up")
        time.sleep(2)
    # What it had in flight (its two workers) at most; every later request went elsewhere.
    assert len(running.failed) <= 2, running.failed
    assert [t for t in running.ok if cut_at < t < cut_at + 6]
    since = node.log_mark()
    with load(cluster):
        time.sleep(FAIL_TIMEOUT + 3)
    assert served(node, since) > 0, "the node got no request after its link came back"


@pytest.fixture(scope="module")
def upgrade(cluster):
    """A newer build of this tree's packages in each node's /var/tmp/upgrade; its version."""
    repo, version = upgrade_repository()
    for node in cluster.nodes:
        node.path("/var/tmp/upgrade").mkdir(exist_ok=True)
        for deb in repo.glob(f"*-uwsgi-gateway*_{version}_all.deb"):
            node.path(f"/var/tmp/upgrade/{deb.name}").write_bytes(deb.read_bytes())
    return version


def test_draining_each_node_in_turn_to_upgrade_it_fails_no_request(cluster, upgrade):
    with load(cluster) as running:
        for node in cluster.nodes[:3]:
            drained = node.run("nova-uwsgi-gateway-node drain 60")
            assert "no request in flight" in drained.stdout
            since = node.log_mark()
            node.apt("install /var/tmp/upgrade/nova-uwsgi-gateway_*.deb "
                     "/var/tmp/upgrade/nova-uwsgi-gateway-node_*.deb")
            assert served(node, since) == 0, "a drained node got requests"
            node.run("nova-uwsgi-gateway-node resume")
            time.sleep(FAIL_TIMEOUT + 1)
    assert not running.failed, running.failed[:10]
    for node in cluster.nodes[:3]:
        assert node.run("dpkg-query -W -f='${Version}' nova-uwsgi-gateway-node").stdout == upgrade


def test_a_fourth_node_added_by_one_line_and_a_reload_gets_requests(cluster):
    fourth = cluster.nodes[3]
    since = fourth.log_mark()
    with load(cluster) as running:
        time.sleep(2)
        list_nodes(cluster, cluster.nodes, FAIL_TIMEOUT)
        time.sleep(8)
    assert not running.failed, running.failed[:10]
    assert served(fourth, since) > 0, "the added node got no request"


# noauth2 leaves X-Project-Id to the client (ooi's api-paste.ini); nova takes a project id
# in a URL, as ooi puts it, only if it looks like keystone's ([api] project_id_regex).
PROJECT = "c0ffee"
OCCI_USER = f"X-Auth-Token: admin:{PROJECT}"


def occi_compute(cluster, count):
    """The statuses of ``count`` GET /occi1.1/compute/ through the front end's 8787."""
    proc = cluster.fe.run(
        f"for i in $(seq {count}); do curl -sS --max-time 10 --cacert {CA} -H '{OCCI_USER}' "
        f"-H 'X-Project-Id: {PROJECT}' -o /dev/null -w '%{{http_code}}\\n' "
        f"https://{cluster.fe.address}:8787/occi1.1/compute/; done", check=False, timeout=600)
    return proc.stdout.split()


def test_ooi_on_8787_is_balanced_over_the_nodes_that_have_it_and_nova_over_all(cluster, upgrade):
    # One node without ooi: a request sent there is refused and sent on once (two would
    # take both of nginx's tries).
    with_ooi, without = cluster.nodes[:3], cluster.nodes[3:]
    cluster.fe.apt("install ooi-uwsgi-gateway-frontend")
    for node in with_ooi:
        since = node.log_mark()
        # ooi of the version the nodes run since the rolling upgrade.
        node.apt("install /var/tmp/upgrade/nova-uwsgi-gateway_*.deb "
                 "/var/tmp/upgrade/nova-uwsgi-gateway-node_*.deb "
                 "/var/tmp/upgrade/ooi-uwsgi-gateway_*.deb")
        node.wait_for_workers(1, "ooi's worker", since, timeout=120)
    marks = {node.machine: node.log_mark() for node in cluster.nodes}
    with load(cluster) as running:
        statuses = occi_compute(cluster, 20)
    # An empty OCCI collection (no server): every request answered, by a node with ooi.
    assert statuses == ["204"] * 20, statuses
    ooi_counts = [len(re.findall(r'"GET /occi1\.1/compute/" status: 204',
                                 node.gateway_log(marks[node.machine]))) for node in with_ooi]
    print(f"ooi per node with it: {ooi_counts}")
    assert all(ooi_counts) and sum(ooi_counts) >= 20, ooi_counts
    # The nodes without ooi, rested for ooi only, go on serving nova's API.
    assert not running.failed, running.failed[:10]
    for node in without:
        assert served(node, marks[node.machine]) > 0, f"{node.machine} got no nova request"


def test_a_powered_off_node_fails_at_most_its_requests_in_flight(cluster):
    node = cluster.nodes[2]
    with load(cluster) as running:
        time.sleep(2)
        off_at = time.time()
        node.poweroff(hard=True)
        time.sleep(FAIL_TIMEOUT * 2 + 2)
        window = time.time() - off_at
    assert len(running.failed) <= 2, running.failed
    assert not [f for f in running.failed if f[0] > off_at + 2], running.failed
    # The front end rests it (fail_timeout) instead of trying it for its share of the
    # requests: a few tries per rest (those racing its 300 ms connect timeout), logged.
    share = len([t for t in running.ok if t > off_at]) / 4
    tried = cluster.fe.run(f"grep '\\[error\\].*{node.address}:18774' /var/log/nginx/error.log",
                           check=False).stdout.splitlines()
    print(f"the front end tried the powered-off node {len(tried)} times in {window:.0f} s "
          f"(its share of the requests: {share:.0f})")
    assert len(tried) < share / 10, "the front end kept sending to a dead node"
    # The status command on the front end names the node; nova's site still answers.
    # (ooi's may say 502: its request may draw this node and the one without ooi,
    # and is sent on once only.)
    said = cluster.fe.run("nova-uwsgi-gateway-status --expiry-warning 1", check=False)
    assert f"WARNING node {node.address}:18774: does not take the link" in said.stdout, said.stdout
    assert "OK site nova-uwsgi-gateway-frontend: https://127.0.0.1:8774/ answers 200" \
        in said.stdout, said.stdout
    critical = [line for line in said.stdout.splitlines()[1:] if line.startswith("CRITICAL")]
    assert said.returncode == (2 if critical else 1), said.stdout
    assert all(line.startswith("CRITICAL site ooi-uwsgi-gateway-frontend:") for line in critical)


def test_with_no_node_up_the_front_end_answers_502_at_once_naming_the_cause(cluster):
    alive = [node for node in cluster.nodes if node.running()]
    for node in alive:
        cluster.bridge.run(f"ip link set {cluster.bridge.link(node.machine)} down")
    try:
        status, body, seconds = client(cluster)
        assert status == "502" and seconds < 1, (status, seconds, body)
        assert "No API node answered" in body and NODES_CONF in body, body
        said = cluster.fe.run("nova-uwsgi-gateway-status --timeout 1", check=False).stdout
        assert said.startswith("NOVA-UWSGI-GATEWAY CRITICAL"), said
        assert "CRITICAL node nodes.conf: no node takes the link" in said, said
        assert "CRITICAL site nova-uwsgi-gateway-frontend: https://127.0.0.1:8774/: nginx " \
            "answered 502: no API node answered" in said, said
    finally:
        for node in alive:
            cluster.bridge.run(f"ip link set {cluster.bridge.link(node.machine)} up")
    for node in alive:
        node.run("systemctl stop nova-uwsgi-gateway")
    status, body, seconds = client(cluster)
    assert status == "502" and seconds < 1, (status, seconds, body)
    assert "No API node answered" in body
