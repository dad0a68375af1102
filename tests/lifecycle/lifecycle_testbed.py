"""An isolated host of this host's release (or another) where maintainer scripts really act.

A tree made by testbeds.py with both sysvinit-core and systemd installed and
no policy-rc.d, so invoke-rc.d and deb-systemd-invoke act for real. Each
Testbed unpacks it and boots it with one of two init systems (INITS):
- "sysvinit": under its own network, PID, mount, UTS and IPC namespaces with
  a reaper as PID 1 and the rc2.d scripts run as boot runs them (invoke-rc.d
  runs the init scripts; sysvinit's runlevel reads the utmp boot writes: on
  trixie, systemd's runlevel answers "unknown" unless systemd runs);
- "systemd": systemd as PID 1 (systemd-nspawn --boot, its own network), so
  the maintainer scripts act through systemctl and the units. The default:
  testbeds.FULL_LIFECYCLE's init system.
Either way it has its own loopback and ports and its own /run; nothing leaks to
the host, and killing its PID 1 ends every process it started.

It holds real nova (sqlite, noauth2), nginx, uWSGI and nova-api, and sees the
packages from dist/ (or another apt repository) at /srv/dist. A testbed of kind
"frontend" holds nginx and no nova. Plugged into a cluster_testbed.Bridge
instead of a network of its own, testbeds make a cluster.
"""
import atexit
import contextlib
import json
import os
import pathlib
import struct
import subprocess
import tempfile
import threading
import time

import pytest

from testbeds import DEBIAN_PATH, FULL_LIFECYCLE, TOP, cached_tree, copy_tracked_tree, \
    host_release

HERE = pathlib.Path(__file__).resolve().parent
WORK = TOP / "build" / "lifecycle"
# Everything the packages and the scenarios need: the testbed has no network.
PACKAGES = """
    sysvinit-core systemd nginx nova-api nova-common python3-nova python3-pastedeploy
    uwsgi-core uwsgi-plugin-python3 ssl-cert iproute2 procps curl openssl
    ca-certificates python3-openstackclient
    python3-routes python3-six python3-pbr python3-webob python3-oslo.config
    python3-oslo.log mariadb-server python3-pymysql nftables
""".split()
# A cluster's front end (cluster_testbed.py): a systemd host with its bus and /sbin/init
# (invoke-rc.d acts only where it finds one, as on a real host), what the
# front end's package needs (nginx, no nova) and what the tests use in it.
FRONTEND_PACKAGES = """
    systemd systemd-sysv dbus nginx ssl-cert openssl curl iproute2 python3 ca-certificates procps
""".split()
# The trees a Testbed boots, by kind: their packages and the script that bakes
# the rest in (run in a network namespace of its own).
KINDS = {"lifecycle": (PACKAGES, HERE / "prepare-testbed"),
         "frontend": (FRONTEND_PACKAGES, None)}
INITS = ("sysvinit", "systemd")
CA = "/etc/ssl/lifecycle/ca.pem"
CERT = "/etc/ssl/lifecycle/server.pem"
KEY = "/etc/ssl/lifecycle/server.key"

# PID 1 of a testbed: reaps orphans (daemons the init scripts start) forever.
REAPER = """
import os, signal
signal.signal(signal.SIGCHLD, lambda *_: None)
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        signal.pause()
"""

# Runs in the new namespaces, before PID 1 takes over.
ENTER = """
set -e
root=$1
mount --make-rprivate /
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777 tmpfs "$root/dev/shm"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
mkdir -p "$root/srv/dist"
mount --bind -o ro "$2" "$root/srv/dist"
ip link set lo up
hostname testbed
exec chroot "$root" /usr/bin/python3 -c "$3"
"""


def tarball(release=None, kind="lifecycle"):
    """The tree of a testbed of ``kind`` (KINDS) and ``release`` (default: the host's),
    made once (lifecycle: about 3 minutes, frontend: 30 s)."""
    packages, prepare = KINDS[kind]
    bake = [] if prepare is None else [
        f"--customize-hook=copy-in {prepare} /usr/local/sbin",
        # Its own network: what it starts (MariaDB) listens on no port of this host.
        f'--customize-hook=unshare --net chroot "$1" sh -c '
        f'"ip link set lo up && /usr/local/sbin/{prepare.name}"',
        f'--customize-hook=rm "$1"/usr/local/sbin/{prepare.name}']
    return cached_tree(kind, release or host_release(), [
        "--variant=apt", "--include=" + ",".join(packages), *bake,
        # Offline from here on: the gateway's packages come from /srv/dist only.
        '--customize-hook=rm -f "$1"/etc/apt/sources.list "$1"/etc/apt/sources.list.d/*',
        '--customize-hook=echo "deb [trusted=yes] file:/srv/dist ./" '
        '> "$1"/etc/apt/sources.list.d/gateway.list',
        '--customize-hook=chroot "$1" apt-get clean'], inputs=[prepare] if prepare else [])


# Moves itself into the cgroups given (directories, made if need be), then runs its argv.
JOIN_CGROUPS = 'for group; do [ "$group" = -- ] && break; mkdir -p "$group"; ' \
               'echo $$ > "$group/cgroup.procs"; shift; done; shift; exec "$@"'


def own_cgroups(name):
    """Cgroup ``name`` below this process's own in each hierarchy systemd-nspawn places
    a container by (cgroup2 and, on a hybrid host, name=systemd). systemd-nspawn
    --keep-unit puts a container in <its own cgroup>/payload: started from one cgroup,
    testbeds booted at once would share one, and each one's systemd would stop, kill
    and move the others' services as its own."""
    own = dict(line.rstrip("\n").split(":", 2)[1:] for line in open("/proc/self/cgroup"))
    groups = {}
    for line in open("/proc/self/mountinfo"):
        fields = line.split()
        mount_point, (fstype, _, options) = fields[4], fields[fields.index("-") + 1:][:3]
        if fstype == "cgroup2":
            key = ""
        elif fstype == "cgroup" and "name=systemd" in options.split(","):
            key = "name=systemd"
        else:
            continue
        if key in own and key not in groups and fields[3] == "/":
            groups[key] = f"{mount_point}{own[key].rstrip('/')}/{name}"
    return list(groups.values())


def remove_cgroups(groups):
    """Remove cgroups (and the ones below them) their processes have left."""
    for group in groups:
        for path, _, _ in os.walk(group, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(path)


def utmp_runlevel(level):
    """A utmp RUN_LVL record, as init writes at boot (invoke-rc.d asks runlevel)."""
    # struct utmp on x86-64 glibc: type, pid, line, id, user, host, exit, session, tv, addr.
    return struct.pack("hxxi32s4s32s256s4xi2i16s20x", 1, ord(level) + 256 * ord("N"),
                       b"~", b"~~", b"runlevel", b"", 0, int(time.time()), 0, b"")


def container_init(anchor):
    """PID (as this host sees it) of PID 1 in a namespace below process ``anchor``."""
    parents = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    for pid in parents:
        above = pid
        while above in parents and above != anchor:
            above = parents[above]
        with contextlib.suppress(OSError):
            if above == anchor and pid != anchor and pathlib.Path(
                    f"/proc/{pid}/status").read_text().split("NSpid:")[1].split("\n")[0] \
                    .split()[-1] == "1":
                return pid
    return None


class Testbed:
    __test__ = False  # a helper, not tests (modules import it by name)

    def __init__(self, name, repo, init=FULL_LIFECYCLE[1], release=None, kind="lifecycle",
                 network=None, host=None):
        """A testbed in WORK/name. ``network``: a cluster_testbed.Bridge it is plugged
        into as ``host`` (its host and machine name there, with an address); without,
        a network of its own where it is host "testbed"."""
        assert init in INITS, init
        assert kind in KINDS, kind
        assert network is None or (init == "systemd" and host), "a bridge takes nspawn hosts"
        self.root = WORK / name
        self.machine = host or name.replace("_", "-")  # a host name: modules' names have "_"
        self.host = host or "testbed"
        self.network = network
        self.address = network.address(host) if network else None
        self.repo = pathlib.Path(repo)
        self.init = init
        self.release = release or host_release()
        self.kind = kind
        self.overlay = WORK / f"{name}.overlay"
        self.pid = self.anchor = None
        self.cgroups = []

    def unpack(self):
        """Its own tree in root: an overlay (changes on disk) on its kind's tree, unpacked
        once in memory for every testbed of the run (shared_tree): no time, where
        unpacking a tarball each takes 2 to 25 s, and as long to remove."""
        self.remove_tree()
        self.root.mkdir(parents=True)
        (self.overlay / "upper").mkdir(parents=True)
        (self.overlay / "work").mkdir()
        subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        f"lowerdir={shared_tree(self.release, self.kind)},"
                        f"upperdir={self.overlay}/upper,workdir={self.overlay}/work",
                        str(self.root)], check=True)

    def remove_tree(self):
        if os.path.ismount(self.root):
            subprocess.run(["umount", str(self.root)], check=True)
        subprocess.run(["rm", "-rf", str(self.root), str(self.overlay)], check=True)

    def start(self):
        self.unpack()
        # Its name resolves without a network, as an installed machine's does
        # (nova-common's postinst asks `hostname -i`); on a bridge, every host's does.
        self.path("/etc/hostname").write_text(f"{self.host}\n")
        with open(self.path("/etc/hosts"), "a") as hosts:
            hosts.write(self.network.hosts_file() if self.network else "127.0.1.1\ttestbed\n")
        if self.init == "systemd":
            return self.start_systemd()
        self.anchor = subprocess.Popen(
            ["unshare", "--net", "--pid", "--mount", "--uts", "--ipc", "--fork",
             "--kill-child", "sh", "-c", ENTER, "enter", str(self.root),
             str(self.repo), REAPER], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(WORK / f"{self.root.name}.log", "w"))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            children = pathlib.Path(f"/proc/{self.anchor.pid}/task/{self.anchor.pid}/children")
            pid = children.read_text().split() if children.exists() else []
            if pid and os.readlink(f"/proc/{pid[0]}/root") == str(self.root):
                self.pid = int(pid[0])
                self.run("apt-get update -q -o Acquire::Languages=none")
                return self
            assert self.anchor.poll() is None, "the testbed's namespaces failed to start"
            time.sleep(0.1)
        raise AssertionError("the testbed did not start")

    def start_systemd(self):
        """Boot the tree with systemd as PID 1; return when systemctl answers."""
        # --register=no and --keep-unit, or nspawn wants a system bus the host has not
        # got; --link-journal=no, or it wants the host's machine ID (a chroot has none).
        nspawn = ["systemd-nspawn", "--quiet", "--boot", "--register=no", "--keep-unit",
                  "--link-journal=no", "--console=read-only", f"--hostname={self.host}",
                  f"--machine={self.machine}", "-D", str(self.root),
                  f"--bind-ro={self.repo}:/srv/dist"]
        if self.network:
            # Started in the bridge's namespace, its veth (host0 inside) plugged into br0.
            nspawn = self.network.command([*nspawn, f"--network-bridge={self.network.BRIDGE}"])
        else:
            nspawn.append("--private-network")
        remove_cgroups(self.cgroups)
        self.cgroups = own_cgroups(f"testbed-{os.getpid()}-{self.machine}")
        self.anchor = subprocess.Popen(
            ["sh", "-c", JOIN_CGROUPS, "sh", *self.cgroups, "--", *nspawn],
            stdin=subprocess.DEVNULL,
            stdout=open(WORK / f"{self.root.name}.log", "a"), stderr=subprocess.STDOUT,
            # The unified hierarchy: trixie's systemd boots in nothing else.
            env=dict(os.environ, PATH=DEBIAN_PATH, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.anchor.poll() is None, \
                "systemd-nspawn exited:\n" + (WORK / f"{self.root.name}.log").read_text()[-3000:]
            self.pid = container_init(self.anchor.pid)
            # systemctl answers once systemd listens on its private socket.
            if self.pid and self.run("test -S /run/systemd/private", check=False,
                                     quiet=True).returncode == 0:
                if self.network:
                    self.run(f"ip addr add {self.address}/{self.network.PREFIX_LENGTH} dev host0"
                             " && ip link set host0 up")
                self.run("apt-get update -q -o Acquire::Languages=none")
                return self
            time.sleep(0.2)
        raise AssertionError("systemd did not boot in the testbed")

    def running(self):
        """Its init (or systemd-nspawn) still runs: false once it is powered off."""
        return self.anchor is not None and self.anchor.poll() is None

    def poweroff(self, hard=False):
        """Switch it off and return once it is gone: `systemctl poweroff` under systemd;
        ``hard`` (or under sysvinit), PID 1 killed, as when the power fails."""
        if not self.running():
            return
        if self.init == "systemd" and self.pid and not hard:
            self.run("systemctl --check-inhibitors=no --no-block poweroff", check=False)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.anchor.wait(timeout=60)
        if self.running():
            subprocess.run(["kill", "-9", str(self.pid or self.anchor.pid)])
        self.anchor.wait(timeout=30)

    def stop(self):
        """Power it off and remove its tree."""
        self.poweroff()
        if self.init == "systemd":
            subprocess.run(["rm", "-rf", f"/run/systemd/nspawn/propagate/{self.machine}"])
            remove_cgroups(self.cgroups)
        self.remove_tree()

    def command(self, script, online=False):
        """argv that runs a shell script inside the testbed, as root at a root prompt.
        ``online``: in the host's network instead of the testbed's (to reach the archive)."""
        return ["nsenter", f"--target={self.pid}", "--mount", *([] if online else ["--net"]),
                "--pid", "--uts", "--ipc", "--root", "--wd", "--", "/usr/bin/env", "-i",
                f"PATH={DEBIAN_PATH}", "HOME=/root", "LC_ALL=C.UTF-8", "/bin/sh", "-c", script]

    def run(self, script, check=True, timeout=600, quiet=False, online=False):
        """Run a shell script inside; show it and its output in the test log."""
        if not quiet:
            print(f"{self.host}{'(online)' if online else ''}# {script}")
        # Files, not pipes: daemons started inside would hold a pipe open.
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            proc = subprocess.run(self.command(script, online), stdin=subprocess.DEVNULL,
                                  stdout=out, stderr=err, timeout=timeout)
            out.seek(0)
            err.seek(0)
            proc.stdout = out.read().decode(errors="replace")
            proc.stderr = err.read().decode(errors="replace")
        if not quiet:
            print(proc.stdout + proc.stderr, end="")
        if check and proc.returncode:
            pytest.fail(f"in the testbed, `{script}` exited {proc.returncode}:\n"
                        f"{proc.stdout}{proc.stderr}")
        return proc

    def popen(self, script, output):
        """Start a script inside without waiting; its output goes to the open file ``output``."""
        return subprocess.Popen(self.command(script), stdin=subprocess.DEVNULL,
                                stdout=output, stderr=subprocess.STDOUT)

    def path(self, path):
        """A testbed file as seen from the host (not under /run, /tmp, /proc)."""
        return self.root / path.lstrip("/")

    def apt(self, args, check=True, timeout=600, online=False):
        """apt-get the way apt runs non-interactively: keep edited conffiles."""
        return self.run("DEBIAN_FRONTEND=noninteractive apt-get -y -q "
                        "-o Dpkg::Options::=--force-confdef "
                        "-o Dpkg::Options::=--force-confold " + args, check=check,
                        timeout=timeout, online=online)

    def boot(self):
        """What boot does under sysvinit: a runlevel in utmp, then rc2.d's S scripts.
        Under systemd: wait for systemd to have started every unit."""
        if self.init == "systemd":
            self.run("timeout 120 systemctl is-system-running --wait; "
                     "systemctl --failed --no-legend",
                     check=False)
        else:
            self.run("mkdir -p /run/lock && chmod 1777 /run/lock")
            subprocess.run(self.command("cat > /run/utmp"), input=utmp_runlevel("2"),
                           check=True)
            self.run("for script in /etc/rc2.d/S*; do [ -x \"$script\" ] && "
                     "\"$script\" start; done; runlevel")
        if self.kind == "frontend":
            return  # no nova: booted when systemd says so
        # Booted: whatever holds 8774 (nova-api, or the gateway) answers.
        self.wait_until("curl -s -o /dev/null http://127.0.0.1:8774/ || "
                        "curl -sk -o /dev/null https://127.0.0.1:8774/", "8774 after boot", 120)

    def reboot(self):
        """sysvinit: every process but PID 1 killed, /run a new empty tmpfs, then boot.
        systemd: `systemctl reboot`; systemd-nspawn exits (133) and boots the tree again."""
        if self.init == "systemd":
            self.run("systemctl --check-inhibitors=no --no-block reboot")
            status = self.anchor.wait(timeout=120)
            assert status == 133, f"systemd-nspawn exited {status} on reboot, not 133"
            self.start_systemd()
        else:
            self.run("kill -9 -1 || true; sleep 0.5; umount -l /run; "
                     "mount -t tmpfs -o mode=0755 tmpfs /run")
        self.boot()

    def wait_until(self, script, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.run(script, check=False).returncode == 0:
                return
            time.sleep(0.5)
        pytest.fail(f"timed out waiting for {what}\n" + self.logs())

    @property
    def gateway_log_command(self):
        """A shell command printing where the emperor's, the vassals' and nova's lines
        go: the journal under systemd, the emperor's log file under sysvinit."""
        if self.init == "systemd":
            return "journalctl --no-pager -o cat -u nova-uwsgi-gateway"
        return "cat /var/log/nova-uwsgi-gateway/emperor.log"

    def log_mark(self):
        """Where the gateway's log ends now, for gateway_log(since=...): a time under
        systemd (the journal outlives a reboot only if its machine-id does), an offset
        into emperor.log under sysvinit."""
        if self.init == "systemd":
            return time.time()
        return int(self.run("stat -c %s /var/log/nova-uwsgi-gateway/emperor.log",
                            quiet=True).stdout)

    def gateway_log(self, since=None):
        """The gateway's log, or what it logged after ``since`` (a log_mark())."""
        return self.run(self._log_command(since), quiet=True).stdout

    def _log_command(self, since):
        if since is None:
            return self.gateway_log_command
        return self.gateway_log_command + (f" --since @{since:.6f}" if self.init == "systemd"
                                           else f" | tail -c +{since + 1}")

    def wait_for_workers(self, count, what, since=None, timeout=60):
        """Wait until ``count`` workers have logged their app ready ("ready in ...
        (default app)") since ``since`` (a log_mark()), or ever."""
        self.wait_until(f"test $({self._log_command(since)} | "
                        f"grep -c 'ready in .* (default app)') -ge {count}", what, timeout)

    def emperor_events(self, since):
        """[(time, message)] of the emperor's own lines ("[emperor] ...") logged from
        ``since`` (a time.time()) on, and the resolution of those times in seconds:
        the journal's under systemd, log-date's whole seconds in emperor.log."""
        if self.init == "systemd":
            lines = self.run(f"journalctl --no-pager -o short-unix -u nova-uwsgi-gateway "
                             f"--since @{since - 1:.6f} | grep -a ' \\[emperor\\] '",
                             check=False, quiet=True).stdout.splitlines()
            events = [(float(line.split()[0]), line.split("[emperor] ", 1)[1])
                      for line in lines]
            resolution = 1e-6
        else:
            # log-date: "Sat Dec  5 14:54:12 2026 - [emperor] ..."; the testbed's date reads it.
            lines = self.run("grep -a ' - \\[emperor\\] ' /var/log/nova-uwsgi-gateway/emperor.log"
                             " | while IFS= read -r line; do "
                             "echo \"$(date -d \"${line%% - *}\" +%s) ${line#* - \\[emperor\\] }\"; "
                             "done", check=False, quiet=True).stdout.splitlines()
            events = [(float(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in lines]
            resolution = 1
        return [(t, message) for t, message in events if t >= since - resolution], resolution

    def emperor_pid(self):
        """The emperor's PID: the unit's MainPID under systemd, the init script's pidfile."""
        if self.init == "systemd":
            return self.run("systemctl show --value -p MainPID nova-uwsgi-gateway.service",
                            quiet=True).stdout.strip()
        return self.run("cat /run/nova-uwsgi-gateway.pid", quiet=True).stdout.strip()

    def logs(self):
        """What the operator would look at: the gateway's, nginx's and nova's logs,
        and under systemd the journal of the units involved."""
        journal = ("; journalctl --no-pager -n 40 -u nova-uwsgi-gateway -u nginx -u nova-api"
                   if self.init == "systemd" else "")
        return self.run("tail -n 30 /var/log/nova-uwsgi-gateway/*.log "
                        "/var/log/nginx/error.log /var/log/nova/*.log" + journal,
                        check=False).stdout


SHARED_TREES = {}
SHARED_TREES_LOCK = threading.Lock()  # testbeds of a cluster start in threads


def shared_tree(release, kind):
    """The tree of ``kind`` and ``release`` unpacked once for this test run in a tmpfs
    (about 1 s; 0.8-1.3 GB of memory), unmounted when the run ends."""
    with SHARED_TREES_LOCK:
        return SHARED_TREES.get((release, kind)) or unpack_shared_tree(release, kind)


def unpack_shared_tree(release, kind):
    path = WORK / f"tree-{kind}-{release}"
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(path)], check=True)
    atexit.register(lambda: subprocess.run(["umount", "-l", str(path)]))
    subprocess.run(["tar", "-xf", str(tarball(release, kind)), "-C", str(path)], check=True)
    SHARED_TREES[release, kind] = path
    return path


@contextlib.contextmanager
def booted_testbed(name, repo, init=FULL_LIFECYCLE[1]):
    """A testbed that has booted (nginx, nova-api running), removed afterwards."""
    bed = Testbed(name, repo, init).start()
    try:
        bed.boot()
        yield bed
    finally:
        bed.stop()


class Load:
    """tests/lifecycle/load.py running inside a testbed while the block runs.

    Afterwards ``ok`` holds the time of every 200 and ``failed`` [time, what]
    of every other outcome, as the clients saw it. ``from_host``: the host's
    python3 runs the clients in the testbed's network, for when the testbed's
    own python3 is itself being upgraded.
    """

    def __init__(self, testbed, url="https://127.0.0.1:8774/", connections=4, from_host=False):
        self.testbed, self.url, self.connections = testbed, url, connections
        self.from_host = from_host
        self.stopfile = "/var/tmp/stop-load"
        self.output = WORK / f"{testbed.root.name}-load.json"

    def __enter__(self):
        self.testbed.path(self.stopfile).unlink(missing_ok=True)
        self.file = open(self.output, "w")
        if self.from_host:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net=/proc/{self.testbed.pid}/ns/net", "/usr/bin/python3",
                 str(HERE / "load.py"), self.url, str(self.testbed.path(CA)),
                 str(self.connections), str(self.testbed.path(self.stopfile))],
                stdin=subprocess.DEVNULL, stdout=self.file, stderr=subprocess.STDOUT)
        else:
            self.testbed.path("/usr/local/lib/load.py").write_bytes(
                (HERE / "load.py").read_bytes())
            self.proc = self.testbed.popen(
                f"exec python3 /usr/local/lib/load.py {self.url} {CA} "
                f"{self.connections} {self.stopfile}", self.file)
        time.sleep(2)  # let the clients get going before the action starts
        assert self.proc.poll() is None, self.output.read_text()
        return self

    def __exit__(self, *exc):
        self.testbed.path(self.stopfile).touch()
        self.proc.wait(timeout=60)
        self.file.close()
        text = self.output.read_text()
        result = json.loads(text[text.index("{"):])
        self.ok, self.failed = result["ok"], result["failed"]
        print(f"load: {len(self.ok)} answered 200, {len(self.failed)} failed: {self.failed[:10]}")


def version():
    """The version `make dist` built (this tree's, with its release's suffix)."""
    debs = sorted((TOP / "dist").glob("nova-uwsgi-gateway_*.deb"))
    assert debs, "no nova-uwsgi-gateway .deb in dist/: run `make dist` first"
    return subprocess.run(["dpkg-deb", "-f", str(debs[-1]), "Version"],
                          capture_output=True, text=True, check=True).stdout.strip()


def build_debs(name, ref=None, edit=lambda src: None):
    """The binary packages of this tree's tracked files (or of git ref), after
    edit(source dir), built in WORK/name-src; returns their paths."""
    src, out = WORK / f"{name}-src", WORK / f"{name}-debs"
    subprocess.run(["rm", "-rf", str(src), str(out), *map(str, WORK.glob("*.deb"))], check=True)
    src.mkdir(parents=True)
    if ref is None:
        copy_tracked_tree(src)
    else:
        tar = subprocess.run(["git", "archive", ref], cwd=TOP,
                             capture_output=True, check=True).stdout
        subprocess.run(["tar", "-xf", "-", "-C", str(src)], input=tar, check=True)
    edit(src)
    subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, check=True,
                   env=dict(os.environ, PATH=DEBIAN_PATH), stdout=subprocess.DEVNULL)
    out.mkdir()
    for deb in WORK.glob("*.deb"):
        deb.rename(out / deb.name)
    for leftover in WORK.glob("*.buildinfo"), WORK.glob("*.changes"):
        for path in leftover:
            path.unlink()
    return sorted(out.glob("*.deb"))


def repository(name, debs):
    """An apt repository in WORK/name with debs and dist/'s packages."""
    repo = WORK / name
    subprocess.run(["rm", "-rf", str(repo)], check=True)
    repo.mkdir(parents=True)
    for deb in [*debs, *(TOP / "dist").glob("*.deb")]:
        subprocess.run(["cp", str(deb), str(repo)], check=True)
    packages = subprocess.run(["apt-ftparchive", "packages", "."], cwd=repo,
                              capture_output=True, check=True).stdout
    (repo / "Packages").write_bytes(packages)
    return repo


def upgrade_repository():
    """An apt repository with dist/'s packages and a newer version built from this tree.

    The newer version changes two conffiles, so dpkg must decide about an
    admin's edits the way apt does non-interactively.
    """
    new = version() + "+upgradetest1"

    def edit(src):
        changelog = src / "debian/changelog"
        changelog.write_text(
            f"nova-uwsgi-gateway ({new}) {host_release()}; urgency=medium\n\n"
            "  * Upgrade test build: changed comments in two conffiles.\n\n"
            " -- nova-uwsgi-gateway developers <nova-uwsgi-gateway@packages.invalid>  "
            "Thu, 26 Nov 2026 03:00:00 +0000\n\n" + changelog.read_text())
        for conffile in ("nginx/tls.conf", "vassals-available/osapi_compute.ini"):
            with open(src / "conf/etc/nova-uwsgi-gateway" / conffile, "a") as conf:
                conf.write(f"# Changed in {new}.\n")
    return repository("upgrade-repo", build_debs("upgrade", edit=edit)), new


def vassal(testbed, name="osapi_compute"):
    """(master PID, {worker PIDs}) of a running vassal, or (None, set())."""
    rows = [line.split(None, 2) for line in
            testbed.run("ps -eo pid=,ppid=,args=").stdout.splitlines()]
    mine = {int(pid): int(ppid) for pid, ppid, args in rows if args.endswith(f"--ini {name}.ini")}
    masters = [pid for pid, ppid in mine.items() if ppid not in mine]
    assert len(masters) <= 1, f"more than one {name} vassal master: {masters}"
    if not masters:
        return None, set()
    return masters[0], {pid for pid, ppid in mine.items() if ppid == masters[0]}


def nova_api_running(testbed, service="nova-api"):
    """Debian's nova-api (uWSGI on :8774), or ``service``, runs. Not its `status`: nova-api's
    also counts nova-api-metadata's uwsgi. ([-] keeps pgrep from matching the shell running it.)"""
    return testbed.run(f"pgrep -f '[-]-ini /etc/nova/{service}-uwsgi.ini'",
                       check=False).returncode == 0


def use_test_certificate(testbed):
    """The admin's edit of tls.conf: the testbed's certificate for 127.0.0.1."""
    testbed.run(f"sed -i 's|/etc/ssl/certs/ssl-cert-snakeoil.pem|{CERT}|; "
                f"s|/etc/ssl/private/ssl-cert-snakeoil.key|{KEY}|' "
                "/etc/nova-uwsgi-gateway/nginx/tls.conf && invoke-rc.d nginx reload")
