"""Benchmark driver, run by bench/run as PID 1 of private net/mount/pid namespaces.

Sets up one throwaway nova (sqlite, noauth2, seeded flavors), starts every stack
with TLS and 2 worker processes, measures them interleaved in rounds with wrk, and
writes the table, the P1-P5 verdicts, a PNG and the raw files to the results dir.
"""
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
RES = sys.argv[1]
RAW = os.path.join(RES, "raw")
LOGS = os.path.join(RES, "logs")
W = "/tmp/nova-bench"          # a private tmpfs (mounted below)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
DURATION = int(os.environ.get("BENCH_DURATION", "5"))
CONCS = [int(c) for c in os.environ.get("BENCH_CONC", "1 16 256").split()]
STACKS = os.environ.get("BENCH_STACKS", "gateway eventlet debian-uwsgi apache-mod_wsgi").split()
OVERRIDES = os.environ.get("BENCH_OVERRIDES", "")
# Stacks measured again with a no-op app (run_floor); "" skips that phase.
FLOOR_STACKS = os.environ.get("BENCH_FLOOR", "gateway eventlet").split()
PATHS = ["/", "/v2.1/flavors"]
FLAVORS = 12
WORKERS = 2
PORTS = {"gateway": 8774, "eventlet": 18774, "debian-uwsgi": 28774, "apache-mod_wsgi": 38774}
TOKEN = "admin:admin"
T0 = time.time()


def log(msg):
    print(f"[{time.time() - T0:6.1f}s] {msg}", flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def as_nova(cmd):
    return ["setpriv", "--reuid=nova", "--regid=nova", "--init-groups"] + cmd


# ---------------------------------------------------------------- namespace set-up
def setup_namespace():
    sh("ip link set lo up")
    for d in ("/tmp", "/run", "/var/tmp"):
        sh(["mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", d])
    os.makedirs(RAW)
    os.makedirs(LOGS)
    os.makedirs(W)
    # Logs of every daemon land in the results, never in the host's /var/log.
    for name, owner in (("nginx", "root"), ("nova", "nova"), ("nova-uwsgi-gateway", "root"),
                        ("apache2", "root")):
        d = os.path.join(LOGS, name)
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, owner, owner if owner != "root" else "root")
        os.makedirs(f"/var/log/{name}", exist_ok=True)
        sh(["mount", "--bind", d, f"/var/log/{name}"])
    os.chmod(LOGS, 0o755)


def bind(src, dst):
    sh(["mount", "--bind", src, dst])


def setup_tls():
    """One self-signed certificate for every stack (RSA 2048, SAN 127.0.0.1)."""
    sh(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", f"{W}/key.pem", "-out", f"{W}/cert.pem"], stderr=subprocess.DEVNULL)
    shutil.chown(f"{W}/key.pem", "root", "nova")
    os.chmod(f"{W}/key.pem", 0o640)
    os.chmod(f"{W}/cert.pem", 0o644)
    # The gateway's tls.conf names ssl-cert's snakeoil pair: put ours there (privately).
    bind(f"{W}/cert.pem", "/etc/ssl/certs/ssl-cert-snakeoil.pem")
    bind(f"{W}/key.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")


NOVA_CONF = f"""[DEFAULT]
transport_url = fake://
use_stderr = true
debug = false
state_path = {W}/state
# eventlet stack only (nova-api): TLS, 2 workers, compute API only.
enabled_apis = osapi_compute
enabled_ssl_apis = osapi_compute
osapi_compute_listen = 127.0.0.1
osapi_compute_listen_port = {PORTS['eventlet']}
osapi_compute_workers = {WORKERS}

[api]
auth_strategy = noauth2

[wsgi]
ssl_cert_file = {W}/cert.pem
ssl_key_file = {W}/key.pem

[database]
connection = sqlite:///{W}/nova.sqlite

[api_database]
connection = sqlite:///{W}/nova_api.sqlite

[oslo_concurrency]
lock_path = {W}/lock

[oslo_policy]
enforce_new_defaults = false
enforce_scope = false
"""


def setup_nova():
    """A throwaway nova: its own nova.conf bind-mounted over /etc/nova/nova.conf here only."""
    os.makedirs(f"{W}/state")
    os.makedirs(f"{W}/lock")
    with open(f"{W}/nova.conf", "w") as f:
        f.write(NOVA_CONF)
    shutil.chown(f"{W}/nova.conf", "root", "nova")
    os.chmod(f"{W}/nova.conf", 0o640)
    for p in (W, f"{W}/state", f"{W}/lock"):
        shutil.chown(p, "nova", "nova")
    bind(f"{W}/nova.conf", "/etc/nova/nova.conf")
    shutil.copy(f"{W}/nova.conf", os.path.join(RES, "nova.conf"))
    with open(os.path.join(LOGS, "nova-manage.log"), "w") as out:
        for cmd in (["nova-manage", "api_db", "sync"], ["nova-manage", "cell_v2", "map_cell0"],
                    ["nova-manage", "db", "sync"],
                    ["nova-manage", "cell_v2", "create_cell", "--name", "cell1"]):
            sh(as_nova(cmd), stdout=out, stderr=subprocess.STDOUT)


def apply_overrides():
    """BENCH_OVERRIDES: a tree mirroring /; each file is bind-mounted over its namesake."""
    if not OVERRIDES:
        return []
    done = []
    if not os.path.isdir(OVERRIDES):
        raise SystemExit(f"BENCH_OVERRIDES={OVERRIDES}: no such directory here "
                         "(/tmp, /run and /var/tmp are private to the benchmark)")
    for root, _, files in os.walk(OVERRIDES):
        for name in files:
            src = os.path.join(root, name)
            dst = "/" + os.path.relpath(src, OVERRIDES)
            bind(src, os.path.realpath(dst))
            done.append(dst)
    if not done:
        raise SystemExit(f"BENCH_OVERRIDES={OVERRIDES}: no file to put in place")
    return done


# ---------------------------------------------------------------- stacks
class Stack:
    def __init__(self, name):
        self.name = name
        self.port = PORTS[name]
        self.procs = []

    def spawn(self, cmd, logname, **kw):
        out = open(os.path.join(LOGS, logname), "ab")
        self.procs.append(subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                           start_new_session=True, **kw))

    def start(self):
        getattr(self, "start_" + self.name.replace("-", "_"))()

    def start_gateway(self):
        # What the init script does, without --daemonize (the process tree stays ours).
        sh("install -d -o nova -g www-data -m 0750 /run/nova-uwsgi-gateway")
        sh("install -d -o root -g nova -m 0750 /run/nova-uwsgi-gateway/pool")
        self.spawn(["uwsgi-core", "--ini", "/usr/share/nova-uwsgi-gateway/emperor-pool.ini",
                    "--ini", "/etc/nova-uwsgi-gateway/emperor.ini"],
                   "nova-uwsgi-gateway/emperor.log")
        sh(["nginx", "-t", "-q"])
        self.spawn(["nginx", "-g", "daemon off;"], "nginx/stderr.log")

    def start_eventlet(self):
        self.spawn(as_nova(["/usr/bin/nova-api", "--config-file", "/etc/nova/nova.conf"]),
                   "nova/eventlet.log")

    def start_debian_uwsgi(self):
        # /etc/init.d/nova-api with a cert+key: --https-socket :PORT,CRT,KEY --ini <Debian's ini>,
        # started as nova; --processes after the ini overrides its 16. One deviation from
        # Debian's ini: without "rem-header = Content-Length" (responses then end only at
        # connection close, which wrk cannot count as responses: it reports read errors).
        with open("/etc/nova/nova-api-uwsgi.ini") as f:
            ini = f.read().replace("\nrem-header = Content-Length", "\n#rem-header = Content-Length")
        with open(f"{W}/nova-api-uwsgi.ini", "w") as f:
            f.write(ini)
        shutil.copy(f"{W}/nova-api-uwsgi.ini", os.path.join(RES, "nova-api-uwsgi.ini"))
        self.spawn(as_nova(["/usr/bin/uwsgi_python3", "--https-socket",
                            f":{self.port},{W}/cert.pem,{W}/key.pem",
                            "--ini", f"{W}/nova-api-uwsgi.ini", "--processes", str(WORKERS)]),
                   "nova/debian-uwsgi.stdout.log")

    def start_apache_mod_wsgi(self):
        d = f"{W}/apache"
        os.makedirs(f"{d}/run", exist_ok=True)
        shutil.chown(f"{d}/run", "www-data", "www-data")
        conf = f"""# Apache + mod_ssl + mod_wsgi daemon mode (the Ubuntu/kolla nova-api way).
ServerRoot /etc/apache2
ServerName 127.0.0.1
DefaultRuntimeDir {d}/run
PidFile {d}/run/apache2.pid
Mutex file:{d}/run default
User www-data
Group www-data
LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so
LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so
LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi.so
Include /etc/apache2/mods-available/mpm_event.conf
# Debian's apache2.conf defaults
Timeout 300
KeepAlive On
MaxKeepAliveRequests 100
KeepAliveTimeout 5
HostnameLookups Off
ErrorLog /var/log/apache2/error.log
LogLevel warn
LogFormat "%h %l %u %t \\"%r\\" %>s %O \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
SSLRandomSeed startup builtin
SSLSessionCache shmcb:{d}/run/ssl_scache(512000)
SSLSessionCacheTimeout 300
WSGISocketPrefix {d}/run/wsgi
Listen 127.0.0.1:{self.port}
<VirtualHost *:{self.port}>
    SSLEngine on
    SSLCertificateFile {W}/cert.pem
    SSLCertificateKeyFile {W}/key.pem
    SSLProtocol -all +TLSv1.2 +TLSv1.3
    WSGIDaemonProcess nova-api processes={WORKERS} threads=1 user=nova group=nova display-name=%{{GROUP}}
    WSGIProcessGroup nova-api
    WSGIApplicationGroup %{{GLOBAL}}
    WSGIPassAuthorization On
    WSGIScriptAlias / /usr/bin/nova-api-wsgi
    ErrorLog /var/log/apache2/nova_api_error.log
    CustomLog /var/log/apache2/nova_api_access.log combined
    <Directory /usr/bin>
        Require all granted
    </Directory>
</VirtualHost>
"""
        with open(f"{d}/apache2.conf", "w") as f:
            f.write(conf)
        shutil.copy(f"{d}/apache2.conf", os.path.join(RES, "apache2.conf"))
        sh(["/usr/sbin/apache2", "-f", f"{d}/apache2.conf", "-t"], stderr=subprocess.DEVNULL)
        self.spawn(["/usr/sbin/apache2", "-f", f"{d}/apache2.conf", "-DFOREGROUND"],
                   "apache2/stdout.log")

    def pids(self):
        """Every live process of the stack: the started processes and their descendants."""
        children = {}
        for p in os.listdir("/proc"):
            if p.isdigit():
                try:
                    with open(f"/proc/{p}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError):
                    continue
                children.setdefault(ppid, []).append(int(p))
        todo = [p.pid for p in self.procs]
        seen = []
        while todo:
            pid = todo.pop()
            if os.path.exists(f"/proc/{pid}"):
                seen.append(pid)
                todo.extend(children.get(pid, []))
        return seen

    def cpu(self, by_comm=False):
        """Seconds of user+system CPU of the stack (including reaped children)."""
        ticks = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, rest = f.read().rsplit(")", 1)
                comm = head.split("(", 1)[1]
                rest = rest.split()
                ticks[comm] = ticks.get(comm, 0) + sum(int(x) for x in rest[11:15])
            except OSError:
                pass
        hz = os.sysconf("SC_CLK_TCK")
        if by_comm:
            return {k: v / hz for k, v in ticks.items()}
        return sum(ticks.values()) / hz

    def pss_kib(self):
        return sum(p["pss_kib"] for p in self.pss_by_process())

    def pss_by_process(self):
        """PSS and what each process of the stack is (its command line), in tree order."""
        rows = []
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    pss = sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            except OSError:
                continue
            rows.append({"pid": pid, "cmdline": cmd[:160], "pss_kib": pss})
        return rows

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.procs:
            p.wait(timeout=30)


CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def get(port, path):
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}",
                                 headers={"X-Auth-Token": TOKEN})
    try:
        with urllib.request.urlopen(req, context=CTX, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_ready(stack, timeout=180):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            codes = [get(stack.port, p)[0] for p in PATHS]
            if all(c < 400 for c in codes):
                return codes
            last = codes
        except Exception as e:  # not listening yet
            last = repr(e)
        time.sleep(1)
    raise SystemExit(f"{stack.name} not ready on :{stack.port}: {last}")


def wrk(port, path, conc, duration, tag):
    threads = min(2, conc)
    cmd = ["wrk", "-t", str(threads), "-c", str(conc), "-d", f"{duration}s", "--latency",
           "--timeout", "10s", "-s", os.path.join(HERE, "report.lua"),
           "-H", f"X-Auth-Token: {TOKEN}", f"https://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    with open(os.path.join(RAW, tag + ".wrk.txt"), "w") as f:
        f.write(" ".join(cmd) + "\n" + out.stdout + out.stderr)
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            return json.loads(line[10:])
    raise RuntimeError(f"wrk failed: {out.stdout} {out.stderr}")


def settle(stack, limit=8.0):
    """Wait until the stack stops burning CPU (queued requests of a finished run)."""
    end = time.time() + limit
    prev = stack.cpu()
    while time.time() < end:
        time.sleep(0.3)
        cur = stack.cpu()
        if cur - prev < 0.01:
            return cur
        prev = cur
    return stack.cpu()


# ---------------------------------------------------------------- measuring
def measure(s, path, conc, rnd, kind=""):
    """One wrk cell against stack s, with the stack's CPU inside the run's window only."""
    tag = f"{kind}r{rnd}_{s.name}_{path.replace('/', '_')}_c{conc}"
    c0 = settle(s)
    k0 = s.cpu(by_comm=True)
    r = wrk(s.port, path, conc, DURATION, tag)
    c1 = s.cpu()
    k1 = s.cpu(by_comm=True)
    r["cpu_s_by_process_name"] = {k: round(k1[k] - k0.get(k, 0), 3) for k in k1}
    r.update(stack=s.name, path=path, conc=conc, round=rnd, cpu_s=c1 - c0,
             rps=r["requests"] / (r["duration_us"] / 1e6))
    r["cpu_ms_per_req"] = 1000 * r["cpu_s"] / r["requests"] if r["requests"] else None
    r["sockerr"] = r["connect"] + r["read"] + r["write"] + r["timeout"]
    return r


def run_floor():
    """The servers' own CPU per request: each stack started again with a no-op app.

    bench/noop.py is what /etc/nova/api-paste.ini names as osapi_compute (a bind mount
    for this phase only), so every stack loads it through its usual path (the gateway's
    shim, nova-api's loader), nova's initialisation included; GET /, c=16.
    """
    d = f"{W}/noop"
    os.makedirs(d)
    shutil.copy(os.path.join(HERE, "noop.py"), f"{d}/nova_bench_noop.py")
    with open(f"{d}/api-paste.ini", "w") as f:
        f.write("[app:osapi_compute]\npaste.app_factory = nova_bench_noop:app_factory\n")
    os.chmod(d, 0o755)
    bind(f"{d}/api-paste.ini", "/etc/nova/api-paste.ini")
    os.environ["PYTHONPATH"] = d   # inherited by every server the stacks start
    stacks = {n: Stack(n) for n in STACKS if n in FLOOR_STACKS}
    try:
        for s in stacks.values():
            s.start()
            log(f"floor: {s.name} ready: {wait_ready(s)}")
            wrk(s.port, "/", 16, 2, f"floor_warmup_{s.name}")
        cells = []
        order = list(stacks)
        for rnd in range(1, ROUNDS + 1):
            for name in order:
                r = measure(stacks[name], "/", 16, rnd, kind="floor_")
                cells.append(r)
                log(f"  floor {name:16s} c=16 {r['rps']:7.1f} req/s "
                    f"cpu/req {r['cpu_ms_per_req'] or 0:.3f} ms {r['cpu_s_by_process_name']}")
            order = order[1:] + order[:1]
        return cells
    finally:
        for s in stacks.values():
            s.stop()
        del os.environ["PYTHONPATH"]
        sh(["umount", "/etc/nova/api-paste.ini"])


def run_inproc(name, cmd, args):
    out = subprocess.run(as_nova(cmd), capture_output=True, text=True,
                         env={**os.environ, "OS_NOVA_CONFIG_DIR": "/etc/nova",
                              "INPROC_ARGS": args})
    with open(os.path.join(LOGS, f"{name}.log"), "w") as f:
        f.write(out.stderr)
    for line in (out.stdout + out.stderr).splitlines():   # uWSGI prints it to its log
        if line.startswith("BENCHJSON "):
            res = json.loads(line[10:])
            with open(os.path.join(RAW, f"{name}.json"), "w") as f:
                json.dump(res, f, indent=1)
            return res
    raise SystemExit(f"{name} failed:\n" + out.stdout[-2000:] + out.stderr[-3000:])


def run_limit():
    log("limit: nova's app in-process (seeding flavors, then CPU per request)")
    # Run as nova, which may not read the checkout (e.g. one under /root).
    inproc = shutil.copy(os.path.join(HERE, "inproc.py"), f"{W}/inproc.py")
    limit = run_inproc("limit", ["/usr/bin/python3", inproc], f"seed={FLAVORS} reps=5")
    # The same in the interpreter the gateway's workers run (libpython3.11.so, not the
    # statically linked /usr/bin/python3): how much of "overhead" is the interpreter build.
    limit["uwsgi_cpu_ms"] = run_inproc(
        "limit-uwsgi", ["uwsgi-core", "--plugin", "python3", "--pyrun", inproc],
        "seed=0 reps=5")["cpu_ms"]
    return limit


def main():
    setup_namespace()
    setup_tls()
    setup_nova()
    overridden = apply_overrides()
    log(f"nova ready ({W}); overrides: {overridden or 'none'}")
    limit = run_limit()
    log(f"limit: status {limit['status']}, CPU ms/request {limit['cpu_ms']}")

    stacks = {n: Stack(n) for n in STACKS}
    for s in stacks.values():
        log(f"starting {s.name} on :{s.port}")
        s.start()
        codes = wait_ready(s)
        log(f"{s.name} ready: {dict(zip(PATHS, codes))}")
    # warm-up: every worker loads lazily what the first requests need
    for s in stacks.values():
        for p in PATHS:
            wrk(s.port, p, 16, 2, f"warmup_{s.name}_{p.replace('/', '_')}")
    pss_warm = {n: s.pss_kib() for n, s in stacks.items()}

    cells = []
    order = list(stacks)
    for rnd in range(1, ROUNDS + 1):
        log(f"round {rnd}/{ROUNDS}")
        for path in PATHS:
            for conc in CONCS:
                for name in order:
                    r = measure(stacks[name], path, conc, rnd)
                    cells.append(r)
                    log(f"  {name:16s} {path:14s} c={conc:<3d} {r['rps']:7.1f} req/s "
                        f"p50 {r['p50'] / 1000:7.1f} ms p99 {r['p99'] / 1000:7.1f} ms "
                        f"non2xx {r['status']} sockerr {r['sockerr']} "
                        f"cpu/req {r['cpu_ms_per_req'] or 0:.2f} ms")
        order = order[1:] + order[:1]   # rotate who goes first
    pss_detail = {n: s.pss_by_process() for n, s in stacks.items()}
    pss = {n: sum(p["pss_kib"] for p in rows) for n, rows in pss_detail.items()}
    nprocs = {n: len(s.pids()) for n, s in stacks.items()}
    for s in stacks.values():
        s.stop()
    floor = run_floor() if FLOOR_STACKS else []
    with open(os.path.join(RAW, "cells.json"), "w") as f:
        json.dump({"cells": cells, "floor_cells": floor,
                   "pss_kib": pss, "pss_kib_after_warmup": pss_warm,
                   "pss_by_process": pss_detail,
                   "processes": nprocs, "workers": WORKERS, "limit": limit, "rounds": ROUNDS,
                   "duration": DURATION, "overrides": overridden}, f, indent=1)
    import report
    report.report(RES)
    log(f"done in {time.time() - T0:.0f} s")


if __name__ == "__main__":
    sys.path.insert(0, HERE)
    try:
        main()
    finally:
        subprocess.run(["sync"])
