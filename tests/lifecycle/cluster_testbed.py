"""Several testbeds on one private network: a cluster of API nodes behind a front end.

A Bridge is a network namespace of this host with a bridge in it; each host is a
lifecycle_testbed.Testbed booted by systemd-nspawn in that namespace, its veth
plugged into the bridge. booted_cluster boots, at once, a database host (db,
MariaDB with nova's schemas baked into the lifecycle tree), API nodes (node1...,
Debian's nova-api on that database) and a front end (fe, nginx without nova).
The namespace itself is a client beside them: tests curl the hosts from there,
and cut a host's link by setting its veth down there.
"""
import concurrent.futures
import contextlib
import dataclasses
import subprocess
import time

import pytest

from lifecycle_testbed import CA, Testbed, shared_tree
from testbeds import host_release

SUBNET = "10.77.0"
MAX_NODES = 4
# Every host's name and address: each host's /etc/hosts lists them all.
ADDRESSES = {"db": f"{SUBNET}.1", "fe": f"{SUBNET}.2",
             **{f"node{n}": f"{SUBNET}.{10 + n}" for n in range(1, MAX_NODES + 1)}}
ADMIN = "X-Auth-Token: admin:admin"  # noauth2's admin
NODES_CONF = "/etc/nova-uwsgi-gateway-frontend/nodes.conf"
FRONT_TLS = "/etc/nova-uwsgi-gateway-frontend/nginx/tls.conf"


class Bridge:
    """A private network (SUBNET.0/24) in a network namespace of its own, nugw-<name>,
    removed on exit with everything in it; the namespace is a client at SUBNET.254."""
    BRIDGE = "br0"
    PREFIX_LENGTH = 24
    ADDRESS = f"{SUBNET}.254"

    def __init__(self, name):
        self.netns = f"nugw-{name}"

    def __enter__(self):
        # A namespace an interrupted run left behind goes first.
        subprocess.run(["ip", "netns", "delete", self.netns], stderr=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        for args in (["link", "set", "lo", "up"],
                     ["link", "add", self.BRIDGE, "type", "bridge"],
                     ["addr", "add", f"{self.ADDRESS}/{self.PREFIX_LENGTH}", "dev", self.BRIDGE],
                     ["link", "set", self.BRIDGE, "up"]):
            subprocess.run(["ip", "-n", self.netns, *args], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "netns", "delete", self.netns], check=True)

    def command(self, argv):
        """argv that runs ``argv`` in the bridge's namespace. (Not `ip netns exec`: its
        /sys of the namespace hides the cgroup tree systemd-nspawn needs.)"""
        return ["nsenter", f"--net=/run/netns/{self.netns}", "--", *argv]

    def run(self, script, check=True, timeout=60):
        """Run a shell script in the bridge's namespace (a client on the network);
        show it and its output in the test log."""
        print(f"bridge# {script}")
        proc = subprocess.run(self.command(["sh", "-c", script]), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)
        print(proc.stdout + proc.stderr, end="")
        if check and proc.returncode:
            pytest.fail(f"on the bridge, `{script}` exited {proc.returncode}:\n"
                        f"{proc.stdout}{proc.stderr}")
        return proc

    @staticmethod
    def address(host):
        return ADDRESSES[host]

    @staticmethod
    def hosts_file():
        """/etc/hosts lines naming every host of the network."""
        return "".join(f"{address}\t{host}\n" for host, address in ADDRESSES.items())

    @staticmethod
    def link(host):
        """The bridge's end of ``host``'s veth (systemd-nspawn's vb-<machine>): set it
        down in the namespace and the host is cut off."""
        name = f"vb-{host}"
        assert len(name) <= 15, f"{name}: systemd-nspawn shortens names past IFNAMSIZ"
        return name


@dataclasses.dataclass
class Cluster:
    """What booted_cluster yields: its bridge and its hosts (Testbeds)."""
    bridge: Bridge
    db: Testbed
    fe: Testbed
    nodes: list

    @property
    def hosts(self):
        return [self.db, self.fe, *self.nodes]


def start_database(db):
    """db: MariaDB with nova's cluster schemas; the nova it also holds stopped, its CPU
    for the nodes booting meanwhile."""
    db.start()
    db.run("systemctl stop nova-api nova-api-metadata && systemctl reset-failed && "
           "systemctl enable --now mariadb")


def boot_node(node, database):
    """An API node: booted, then Debian's nova-api restarted on the cluster's database
    once ``database`` (db's start) is done."""
    node.start().boot()
    database.result()
    node.run("cp -p /etc/nova/nova-cluster.conf /etc/nova/nova.conf && systemctl restart nova-api")
    node.wait_until(f"curl -sf -o /dev/null -H '{ADMIN}' http://127.0.0.1:8774/v2.1/flavors",
                    "nova-api on the cluster's database", 120)


@contextlib.contextmanager
def booted_cluster(name, repo, nodes=3, release=None):
    """A Cluster booted on a Bridge (hosts in WORK/<name>-<host>; apt repository ``repo``
    at /srv/dist on each), powered off and removed afterwards, even if it failed to boot."""
    assert 1 <= nodes <= MAX_NODES, nodes
    with Bridge(name) as bridge, contextlib.ExitStack() as stack:
        started = time.monotonic()
        release = release or host_release()
        for kind in ("lifecycle", "frontend"):
            shared_tree(release, kind)
        unpacking = time.monotonic() - started

        def host(host, kind="lifecycle"):
            return Testbed(f"{name}-{host}", repo, release=release, kind=kind, network=bridge,
                           host=host)
        cluster = Cluster(bridge, host("db"), host("fe", "frontend"),
                          [host(f"node{n}") for n in range(1, nodes + 1)])
        pool = stack.enter_context(concurrent.futures.ThreadPoolExecutor(len(cluster.hosts)))
        stack.callback(lambda: list(pool.map(Testbed.stop, cluster.hosts)))
        database = pool.submit(start_database, cluster.db)
        booting = [database, pool.submit(lambda: cluster.fe.start().boot()),
                   *(pool.submit(boot_node, node, database) for node in cluster.nodes)]
        concurrent.futures.wait(booting)  # every host settled before any is stopped
        for future in booting:
            future.result()
        print(f"cluster of {nodes} nodes booted in {time.monotonic() - started:.0f} s "
              f"(its trees unpacked in {unpacking:.0f} s)")
        yield cluster


def install_front_end(cluster):
    """nova-uwsgi-gateway-frontend on fe, serving its clients with a certificate for its
    address from the testbed's CA (lifecycle_testbed.CA), as an admin would set one."""
    fe, signer = cluster.fe, cluster.nodes[0]
    fe.apt("install nova-uwsgi-gateway-frontend")
    signer.run(f"openssl req -newkey rsa:2048 -nodes -subj /CN={fe.address} "
               "-keyout /root/fe.key -out /root/fe.csr 2>/dev/null && "
               f"printf 'subjectAltName = IP:{fe.address}\\nauthorityKeyIdentifier = keyid\\n'"
               " > /root/fe.cnf && openssl x509 -req -in /root/fe.csr -CA /etc/ssl/lifecycle/"
               "ca.pem -CAkey /etc/ssl/lifecycle/ca.key -days 2 -extfile /root/fe.cnf "
               "-out /root/fe.pem 2>/dev/null")
    fe.run("mkdir -p /etc/ssl/lifecycle")
    for source, dest in (("/root/fe.pem", "/etc/ssl/lifecycle/fe.pem"),
                         ("/root/fe.key", "/etc/ssl/lifecycle/fe.key"), (CA, CA)):
        fe.path(dest).write_bytes(signer.path(source).read_bytes())
    fe.run(f"chmod 600 /etc/ssl/lifecycle/fe.key && sed -i "
           f"'s|/etc/ssl/certs/ssl-cert-snakeoil.pem|/etc/ssl/lifecycle/fe.pem|; "
           f"s|/etc/ssl/private/ssl-cert-snakeoil.key|/etc/ssl/lifecycle/fe.key|' {FRONT_TLS}")


def issue_certificates(cluster, node):
    """The node's link certificates from the front end's CA, copied to the node's /root/link
    (what an admin does with nova-uwsgi-gateway-link-ca node and scp)."""
    cluster.fe.run(f"nova-uwsgi-gateway-link-ca node {node.machine} /root/{node.machine}")
    node.run("mkdir -p /root/link")
    for name in ("node.pem", "node.key", "frontend-ca.pem"):
        node.path(f"/root/link/{name}").write_bytes(
            cluster.fe.path(f"/root/{node.machine}/{name}").read_bytes())


def install_node(node):
    """nova-uwsgi-gateway-node on ``node``, its link up with the certificates in /root/link."""
    node.apt("install nova-uwsgi-gateway nova-uwsgi-gateway-node")
    node.run("nova-uwsgi-gateway-node certificates /root/link")
    node.wait_until("ss -Hltn 'sport = :18774' | grep -q LISTEN", "the link on 18774")
    node.wait_for_workers(2, "nova in both workers")


def list_nodes(cluster, nodes, fail_timeout):
    """fe's nodes.conf lists ``nodes`` (max_fails=1, fail_timeout seconds); nginx reloaded."""
    cluster.fe.path(NODES_CONF).write_text("".join(
        f"server {node.address}:18774 max_fails=1 fail_timeout={fail_timeout}s;\n"
        for node in nodes))
    cluster.fe.run("nginx -t && systemctl reload nginx")


@contextlib.contextmanager
def gateway_cluster(name, repo, nodes=3, listed=None, fail_timeout=10, release=None):
    """booted_cluster with the packages from ``repo`` set up as the README says: the front
    end on fe, nova-uwsgi-gateway-node on every node, the first ``listed`` (all) in
    nodes.conf; yields once the front end answers through them."""
    with booted_cluster(name, repo, nodes, release) as cluster:
        started = time.monotonic()
        install_front_end(cluster)
        for node in cluster.nodes:  # one at a time: the CA's serial file
            issue_certificates(cluster, node)
        with concurrent.futures.ThreadPoolExecutor(len(cluster.nodes)) as pool:
            list(pool.map(install_node, cluster.nodes))
        list_nodes(cluster, cluster.nodes[:listed], fail_timeout)
        cluster.fe.wait_until(f"curl -sfS -o /dev/null --cacert {CA} -H '{ADMIN}' "
                              f"https://{cluster.fe.address}:8774/v2.1/flavors",
                              "the front end to answer through the nodes")
        print(f"gateway packages set up on the cluster in {time.monotonic() - started:.0f} s")
        yield cluster
