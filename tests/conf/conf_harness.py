"""Helpers of the conf tier: the source tree's conffiles, copied to a
temporary directory and run with the real nginx and uWSGI.
"""
import contextlib
import grp
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

TOP = pathlib.Path(__file__).resolve().parents[2]
CONF_SRC = TOP / "conf" / "etc" / "nova-uwsgi-gateway"
POOL_SRC = TOP / "share" / "emperor-pool.ini"
INSTALLED_RUN = "/run/nova-uwsgi-gateway"
SHIM = TOP / "nova_uwsgi_gateway" / "wsgi.py"
INSTALLED_ETC = "/etc/nova-uwsgi-gateway"
SNAKEOIL_CERT = "/etc/ssl/certs/ssl-cert-snakeoil.pem"
SNAKEOIL_KEY = "/etc/ssl/private/ssl-cert-snakeoil.key"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON = "/usr/bin/python3"
UWSGI = "/usr/bin/uwsgi-core"
NGINX = "/usr/sbin/nginx"
IS_ROOT = os.geteuid() == 0


def clean_env(**extra):
    env = {"PATH": DEBIAN_PATH, "LANG": "C.UTF-8",
           "PYTHONDONTWRITEBYTECODE": "1"}
    env.update(extra)
    return env


def user_exists(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def group_exists(name):
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def public_tmpdir(prefix):
    """A 0755 directory: nginx workers and dropped-privilege uWSGI workers
    must traverse it (pytest's tmp_path sits in a 0700 directory of root's)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


def replace_once(path, old, new):
    """Replace text that must be there exactly once (so a changed conffile
    makes the test fail loudly rather than test something else)."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not in {path} exactly once"
    path.write_text(text.replace(old, new))


def copy_conf(dest):
    """conf/etc/nova-uwsgi-gateway copied to dest, its absolute
    /etc/nova-uwsgi-gateway paths pointing at the copy."""
    shutil.copytree(CONF_SRC, dest)
    for path in dest.rglob("*"):
        if path.is_file():
            path.write_text(path.read_text().replace(INSTALLED_ETC, str(dest)))
    return dest


def make_cert(directory):
    """A throwaway self-signed certificate for 127.0.0.1 and ::1."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
         "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,IP:::1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, env=clean_env(), timeout=60)
    return cert, key


def use_cert(etc, cert, key):
    tls = etc / "nginx" / "tls.conf"
    replace_once(tls, SNAKEOIL_CERT, str(cert))
    replace_once(tls, SNAKEOIL_KEY, str(key))


def write_nginx_conf(root, site):
    """A main nginx.conf like Debian's (workers as www-data, TLS 1.0/1.1
    still allowed globally) that includes only the site under test, with
    every path nginx writes in root."""
    temp = root / "nginx-temp"
    temp.mkdir(exist_ok=True)
    # The site's own access log in root, its format as Debian's conf.d/ would include it.
    site.write_text(site.read_text().replace("/var/log/nginx/", f"{root}/"))
    log_format = pathlib.Path(site).parent / "log-format.conf"
    user = "user www-data;" if IS_ROOT and user_exists("www-data") else ""
    conf = root / "nginx.conf"
    conf.write_text(f"""\
{user}
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log info;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    # As /etc/nginx/nginx.conf: the site has to override this.
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log {root}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {log_format};
    include {site};
}}
""")
    return conf


def nginx_test(conf, root):
    """`nginx -t` on conf: (passed, output)."""
    proc = subprocess.run(
        [NGINX, "-t", "-c", str(conf), "-p", str(root),
         "-e", str(root / "nginx-error.log")],
        capture_output=True, text=True, env=clean_env(), timeout=30)
    return proc.returncode == 0, proc.stdout + proc.stderr


def wait_for(predicate, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port, host="127.0.0.1"):
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def stop(proc, sig=signal.SIGINT, timeout=10):
    """Stop a process we started; SIGKILL if it does not go in time.
    (uWSGI: SIGINT is an immediate shutdown; SIGTERM without die-on-term
    would be a reload.)"""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return proc.returncode


def point_site_at(etc, port, sock):
    """The site on a free loopback port, its upstream a test socket."""
    site = etc / "nginx" / "nova-api.conf"
    replace_once(site, "listen 8774 ssl;", f"listen 127.0.0.1:{port} ssl;")
    replace_once(site, "listen [::]:8774 ssl;",
                 f"listen [::1]:{port} ssl;" if ipv6_loopback() else "")
    text = site.read_text()
    assert f"unix:{INSTALLED_RUN}/osapi_compute.sock " in text, site
    site.write_text(text.replace(f"unix:{INSTALLED_RUN}/osapi_compute.sock ", f"unix:{sock} "))
    return site


def start_nginx(conf, root, port):
    log = open(root / "nginx-stderr.log", "ab")
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(root),
         "-e", str(root / "nginx-error.log"), "-g", "daemon off;"],
        stdout=log, stderr=log, env=clean_env())
    log.close()
    try:
        wait_for(lambda: proc.poll() is not None or port_open(port), 10,
                 f"nginx on port {port}")
        assert proc.poll() is None, (root / "nginx-error.log").read_text()
    except BaseException:
        stop(proc, signal.SIGTERM)
        raise
    return proc


# Who the test vassals run as when the tests run as root (the shipped
# vassal says nova, which may not exist where the tests run).
VASSAL_USER = "nobody"


def socket_dir(root):
    """root/run, made like debian/nova-uwsgi-gateway.tmpfiles makes
    /run/nova-uwsgi-gateway (0750 nova:www-data) but owned by the test
    vassal's user: the vassal can remove its socket (vacuum), nginx's
    www-data workers can reach it."""
    run = root / "run"
    if not run.exists():
        run.mkdir()
        if IS_ROOT:
            shutil.chown(run, VASSAL_USER,
                         "www-data" if group_exists("www-data") else None)
        run.chmod(0o750)
    return run


def pool_ini(root):
    """share/emperor-pool.ini copied to root, its sockets in socket_dir(root)
    and its zerg servers in a pool/ made like the package makes it (0750,
    group of the test vassal's user): the emperor (root) binds them all."""
    run = socket_dir(root)
    pool = run / "pool"
    pool.mkdir()
    if IS_ROOT:
        shutil.chown(pool, "root", "nogroup")
    pool.chmod(0o750)
    path = root / "emperor-pool.ini"
    path.write_text(POOL_SRC.read_text().replace(f"{INSTALLED_RUN}-stats", str(stats_dir(root)))
                    .replace(INSTALLED_RUN, str(run)))
    return path


def stats_dir(root):
    """root/stats, made like /run/nova-uwsgi-gateway-stats (0750, the vassals' user)."""
    stats = root / "stats"
    if not stats.exists():
        stats.mkdir()
        if IS_ROOT:
            shutil.chown(stats, VASSAL_USER, "nogroup")
        stats.chmod(0o750)
    return stats


class Vassal:
    """A copy of a vassal ini with some options rewritten, run by uwsgi-core."""

    def __init__(self, source, path):
        if pathlib.Path(source) != pathlib.Path(path):
            shutil.copyfile(source, path)
        self.path = path
        self.log = path.with_suffix(".log")
        self.proc = None

    def options(self):
        return [tuple(s.strip() for s in line.split("=", 1))
                for line in self.path.read_text().splitlines()
                if "=" in line and not line.lstrip().startswith(("#", ";"))]

    def option(self, key):
        values = [v for k, v in self.options() if k == key]
        assert len(values) == 1, f"{key} set {len(values)} times in {self.path}"
        return values[0]

    def override(self, key, value=None):
        """Rewrite the one `key = ...` line (value None: drop it)."""
        text = self.path.read_text()
        pattern = re.compile(rf"^[ \t]*{re.escape(key)}[ \t]*=.*$", re.M)
        assert len(pattern.findall(text)) == 1, f"{key} not set once in {self.path}"
        line = "" if value is None else f"{key} = {value}"
        self.path.write_text(pattern.sub(line, text))

    def add(self, key, value):
        self.path.write_text(self.path.read_text() + f"{key} = {value}\n")

    def for_test(self, root, wsgi_file, pool=False):
        """The overrides every test needs: its own app, fifo and chdir;
        unprivileged workers. Its socket from the test's emperor pool
        (pool_ini) if pool, else a socket of its own, as without an emperor."""
        self.override("wsgi-file", wsgi_file)
        self.override("chdir", root)
        run = socket_dir(root)
        self.socket = run / "osapi_compute.sock"
        if pool:
            self.override("zerg", run / "pool" / "osapi_compute")
        else:
            self.override("zerg")
            self.add("socket", self.socket)
            # socket_dir decides who may connect, as for the pool's sockets.
            self.override("chmod-socket", "666")
        self.override("master-fifo", run / f"{self.path.stem}.fifo")
        self.override("stats", stats_dir(root) / f"{self.path.stem}.sock")
        if IS_ROOT:
            self.override("uid", VASSAL_USER)
            self.override("gid", "nogroup")
        else:
            self.override("uid")
            self.override("gid")
        return self

    def start(self, **env):
        out = open(self.log, "ab")
        self.proc = subprocess.Popen([UWSGI, "--ini", str(self.path)],
                                     stdout=out, stderr=out,
                                     env=clean_env(**env))
        out.close()
        return self.proc

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self, apps=None, timeout=20):
        """Until each worker has loaded the app (lazy-apps: one per worker)."""
        apps = apps or int(self.option("processes"))

        def ready():
            assert self.proc.poll() is None, (
                f"uwsgi exited {self.proc.returncode}:\n{self.log_text()}")
            return self.log_text().count("WSGI app 0 (mountpoint='') ready") >= apps
        wait_for(ready, timeout, f"{apps} workers of {self.path}")

    def stop(self, sig=signal.SIGINT, timeout=10):
        if self.proc is not None:
            return stop(self.proc, sig, timeout)


def uwsgi_request(sock_path, path="/", method="GET", headers=None, body=b"",
                  timeout=20):
    """One request over the uwsgi protocol, as nginx's uwsgi_pass makes it.
    Returns (status code, body bytes)."""
    env = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "",
           "SERVER_NAME": "test", "SERVER_PORT": "80", "SCRIPT_NAME": "",
           "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "test:80",
           "CONTENT_LENGTH": str(len(body))}
    env.update(headers or {})
    packet = b"".join(
        struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
        for k, v in env.items())
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(str(sock_path))
        s.sendall(struct.pack("<BHB", 0, len(packet), 0) + packet + body)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    head, _, payload = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, payload


ECHO_APP = '''\
"""What the vassal got from nginx, as JSON."""
import json
import os
import time


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/exit-once":
        # The first request for a marker file (the query string) ends its worker
        # unanswered: nginx sees what a reloaded worker's dropped connection shows.
        try:
            os.close(os.open(environ["QUERY_STRING"], os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            pass
        else:
            os._exit(1)
    if environ.get("PATH_INFO") == "/slow":
        time.sleep(float(environ.get("QUERY_STRING") or 2))
    body = environ["wsgi.input"].read()
    seen = {
        "HTTP_HOST": environ.get("HTTP_HOST"),
        "SCRIPT_NAME": environ.get("SCRIPT_NAME", "<absent>"),
        "PATH_INFO": environ.get("PATH_INFO"),
        "wsgi.url_scheme": environ.get("wsgi.url_scheme"),
        "token_length": len(environ.get("HTTP_X_AUTH_TOKEN", "")),
        "body_length": len(body),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
'''


def write_echo_app(root):
    app = root / "echo_app.py"
    app.write_text(ECHO_APP)
    app.chmod(0o644)
    return app
