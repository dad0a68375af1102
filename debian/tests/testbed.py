"""What every autopkgtest does on the testbed: commands, apt, TLS, a throwaway nova."""
import contextlib
import os
import subprocess
import time

import pytest

TLS_CONF = "/etc/nova-uwsgi-gateway/nginx/tls.conf"
EMPEROR_LOG = "/var/log/nova-uwsgi-gateway/emperor.log"
PKI = "/etc/ssl/uwsgi-gateway-test"
CA = f"{PKI}/ca.pem"
# Minimal nova: sqlite, no message bus; each test adds its auth settings.
NOVA_CONF = """\
[DEFAULT]
transport_url = fake://
state_path = /var/lib/nova
[database]
connection = sqlite:////var/lib/nova/test-nova.sqlite
[api_database]
connection = sqlite:////var/lib/nova/test-nova_api.sqlite
[oslo_concurrency]
lock_path = /var/lock/nova
[oslo_policy]
# bookworm's defaults: trixie's oslo.policy enforces the new defaults and
# scopes, and noauth2's admin has no scoped token (403 for server list).
enforce_new_defaults = false
enforce_scope = false
"""


def run(*cmd, check=True, **kw):
    """Run a command, show its output in the log, return the CompletedProcess."""
    print("+", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    print(proc.stdout, proc.stderr)
    if check and proc.returncode:
        pytest.fail(f"{' '.join(cmd)} exited {proc.returncode}:\n"
                    f"{proc.stdout}\n{proc.stderr}")
    return proc


def apt(*args):
    """apt-get as an admin runs it non-interactively: keep edited conffiles."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return run("apt-get", "-y", "-o", "Dpkg::Options::=--force-confdef",
               "-o", "Dpkg::Options::=--force-confold", *args, env=env)


def installed(pkg):
    proc = run("dpkg-query", "-W", "-f=${db:Status-Status}", pkg, check=False)
    return proc.returncode == 0 and proc.stdout == "installed"


def log_tail(path, size=3000):
    if not os.path.exists(path):
        return f"({path}: none)"
    with open(path, errors="replace") as log:
        return f"{path}:\n" + log.read()[-size:]


def wait_until(predicate, what, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}\n{log_tail(EMPEROR_LOG)}\n"
                f"{log_tail('/var/log/nginx/error.log')}")


def processes():
    """[pid, ppid, user, args] of every process."""
    out = run("ps", "-eo", "pid=,ppid=,user=,args=").stdout
    return [line.split(None, 3) for line in out.splitlines()]


def emperor_processes(table=None):
    """The rows of the gateway's master (its pidfile) and of its children, the
    emperor and the socket pool; the vassals are the emperor's children."""
    table = table if table is not None else processes()
    master = open("/run/nova-uwsgi-gateway.pid").read().strip()
    return [p for p in table if master in (p[0], p[1])]


def vassal_masters(ini, table=None):
    """PIDs of the emperor's children running the vassal ``ini``."""
    table = table if table is not None else processes()
    emperor = {p[0] for p in emperor_processes(table)}
    return [p[0] for p in table if p[1] in emperor and ini in p[3]]


class AdminEdit:
    """Change a conffile the way an admin would, and put it back afterwards."""

    def __init__(self, path, old, new):
        self.path, self.old, self.new = path, old, new

    def __enter__(self):
        with open(self.path) as conf:
            self.saved = conf.read()
        assert self.old in self.saved
        with open(self.path, "w") as conf:
            conf.write(self.saved.replace(self.old, self.new))

    def __exit__(self, *exc):
        with open(self.path, "w") as conf:
            conf.write(self.saved)


def make_certificate():
    """A CA and a server certificate for 127.0.0.1, as an admin would install."""
    os.makedirs(PKI, exist_ok=True)
    # keyUsage on the CA, authorityKeyIdentifier on the server: Python 3.13's
    # default context verifies strictly (VERIFY_X509_STRICT) and refuses them missing.
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=test CA", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-keyout", f"{PKI}/ca.key", "-out", CA)
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", f"{PKI}/server.key", "-out", f"{PKI}/server.csr")
    with open(f"{PKI}/ext.cnf", "w") as ext:
        ext.write("subjectAltName = IP:127.0.0.1\nauthorityKeyIdentifier = keyid\n")
    run("openssl", "x509", "-req", "-in", f"{PKI}/server.csr", "-CA", CA,
        "-CAkey", f"{PKI}/ca.key", "-CAcreateserial", "-days", "2",
        "-extfile", f"{PKI}/ext.cnf", "-out", f"{PKI}/server.pem")
    run("openssl", "verify", "-x509_strict", "-CAfile", CA, f"{PKI}/server.pem")
    os.chmod(f"{PKI}/server.key", 0o600)
    return f"{PKI}/server.pem", f"{PKI}/server.key"


def use_certificate(cert, key):
    """The admin's edit of tls.conf: our certificate instead of snakeoil."""
    with open(TLS_CONF) as conf:
        text = conf.read()
    text = text.replace("/etc/ssl/certs/ssl-cert-snakeoil.pem", cert)
    text = text.replace("/etc/ssl/private/ssl-cert-snakeoil.key", key)
    with open(TLS_CONF, "w") as conf:
        conf.write(text)


def start_gateway():
    run("/usr/share/nova-uwsgi-gateway/check-config")
    run("/etc/init.d/nova-uwsgi-gateway", "restart")
    run("/etc/init.d/nginx", "restart")


@contextlib.contextmanager
def nova_configured(extra):
    """throwaway_nova(extra) for the duration; the old nova.conf back afterwards."""
    saved = throwaway_nova(extra)
    try:
        yield
    finally:
        with open("/etc/nova/nova.conf", "w") as conf:
            conf.write(saved)


def throwaway_nova(extra):
    """Write a sqlite nova.conf (plus ``extra``), sync its databases; return the old one."""
    with open("/etc/nova/nova.conf") as conf:
        saved = conf.read()
    with open("/etc/nova/nova.conf", "w") as conf:
        conf.write(NOVA_CONF + extra)
    for step in (["api_db", "sync"], ["cell_v2", "map_cell0"], ["db", "sync"],
                 ["cell_v2", "create_cell", "--name", "cell1"]):
        run("runuser", "-u", "nova", "--", "nova-manage", *step)
    return saved
