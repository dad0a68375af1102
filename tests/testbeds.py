"""Trees of a Debian release that the tests make hosts from, and the archive they come from.

Every tier that needs a host of its own (the autopkgtest's tarball, the
lifecycle testbed, piuparts' base chroot) gets its tree here: mmdebstrap makes
it from the Debian archive the host's own apt uses, and it is kept in cache/,
made again when its recipe (mmdebstrap's options, the files they copy in, the
archive) changes or it is a week old.
"""
import hashlib
import os
import pathlib
import subprocess
import time

TOP = pathlib.Path(__file__).resolve().parents[1]
CACHE = TOP / "cache"
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MAX_AGE = 7 * 24 * 3600  # a week-old tree misses too many updates


# What differs between the releases the product supports: codename -> version number
# (the +debN of the packages' versions).
RELEASES = {"bookworm": "12", "trixie": "13"}
# The release whose lifecycle tier (tests/lifecycle) runs in full, and the init
# system it boots with: what most operators run. The other release runs the
# scenarios of both init systems (test_init_systems.py) and piuparts.
FULL_LIFECYCLE = ("trixie", "systemd")


def host_release():
    """The codename of the Debian release this host runs (bookworm, trixie)."""
    with open("/etc/os-release") as release:
        fields = dict(line.rstrip("\n").split("=", 1) for line in release if "=" in line)
    return fields["VERSION_CODENAME"].strip('"')


def apt_sources(release=None):
    """The host's Debian archive for ``release`` (default: the host's own) as
    one-line entries, ``deb URI SUITE COMPONENT...``.

    Read from apt itself (``apt-get indextargets``), so sources.list,
    sources.list.d/*.list and deb822 *.sources count alike, and files apt
    ignores do not. The suites of the host's release (``bookworm``,
    ``bookworm-updates``, ``bookworm-security``) become ``release``'s; sources
    for other suites (third-party repositories) are left out.
    """
    host = host_release()
    release = release or host
    # Every source, whether or not `apt-get update` has fetched it yet ...
    rows = indextargets(["TARGET_OF", "REPO_URI", "RELEASE", "COMPONENT"], release_info=False)
    # ... and, where it has, the codename of a suite written as "stable" or "oldstable".
    codenames = {(uri, suite): codename for uri, suite, codename in
                 indextargets(["REPO_URI", "RELEASE", "CODENAME"])}
    entries = {}
    for kind, uri, suite, component in rows:
        suite = codenames.get((uri, suite), suite)
        if kind != "deb" or not (suite == host or suite.startswith(host + "-")):
            continue
        components = entries.setdefault((uri, release + suite[len(host):]), [])
        if component not in components:
            components.append(component)
    if not entries:
        raise RuntimeError(f"apt has no source for Debian {host} (`apt-get indextargets` "
                           "lists none): add one to /etc/apt/sources.list")
    return [f"deb {uri} {suite} {' '.join(components)}"
            for (uri, suite), components in entries.items()]


def indextargets(fields, release_info=True):
    """The given fields of every Packages index apt knows, a tuple a row. Without
    release_info, also the indexes `apt-get update` has not fetched yet."""
    option = [] if release_info else ["--no-release-info"]
    form = "\t".join(f"$({field})" for field in fields)
    rows = subprocess.run(["apt-get", "indextargets", *option, "--format", form,
                           "Created-By: Packages"], capture_output=True, text=True, check=True)
    return [tuple(row.split("\t")) for row in rows.stdout.splitlines()]


def cached_tree(name, release, options, inputs=(), tarball=True):
    """cache/<name>-<release>-<recipe>[.tar]: a tree of ``release`` that mmdebstrap
    makes with ``options`` from the host's archive, made once a week at most.

    ``inputs`` are files the options copy in: their contents are part of the recipe.
    """
    sources = apt_sources(release)
    recipe = "\n".join([*options, *sources, *(pathlib.Path(p).read_text() for p in inputs)])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    suffix = ".tar" if tarball else ""
    path = CACHE / f"{name}-{release}-{digest}{suffix}"
    if path.exists() and time.time() - path.stat().st_mtime < MAX_AGE:
        return path
    CACHE.mkdir(exist_ok=True)
    subprocess.run(["rm", "-rf", *map(str, CACHE.glob(f"{name}-{release}-*"))], check=True)
    partial = CACHE / f"{name}-{release}-{digest}.partial{suffix}"
    subprocess.run(["mmdebstrap", *options, release, str(partial), *sources], check=True,
                   env=dict(os.environ, PATH=DEBIAN_PATH), stdout=subprocess.DEVNULL)
    partial.rename(path)
    path.touch()  # its age counts from now
    return path


def copy_tracked_tree(dest):
    """Copy this tree's tracked (and untracked, not ignored) files into ``dest``: what
    a clone holds, without cache/ and build/ (gigabytes of testbeds)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=TOP,
                           capture_output=True, text=True, check=True).stdout
    tar = subprocess.run(["tar", "-cf", "-", "-T", "-"], cwd=TOP, input=files.encode(),
                         capture_output=True, check=True).stdout
    pathlib.Path(dest).mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xf", "-", "-C", str(dest)], input=tar, check=True)


def other_release():
    """The supported release this host does not run: make check proves it too."""
    others = [release for release in RELEASES if release != host_release()]
    assert len(others) == 1, f"no other release than {host_release()} in {RELEASES}"
    return others[0]


# PID 1 of a namespace the tests make: reaps what daemons orphan (as init does),
# returns the status of the command it runs.
REAPER = """
import os, subprocess, sys
child = subprocess.Popen(sys.argv[1:])
while True:
    pid, status = os.wait()
    if pid == child.pid:
        sys.exit(os.waitstatus_to_exitcode(status))
"""


def as_host(root, command, binds=(), **kwargs):
    """Run the shell ``command`` in the tree ``root`` as if it were a machine of its
    own: its own mount, PID, UTS and IPC namespaces (the host's network), the tree
    the root of its mount namespace, fresh /proc, /dev and /sys from the host, /tmp
    and /run as tmpfs.
    ``binds`` are (host path, path in root) pairs. Returns subprocess.run's result."""
    mounts = ["mount --make-rprivate /", 'mount --bind "$ROOT" "$ROOT"',
              'mount -t proc proc "$ROOT/proc"', 'mount --rbind /sys "$ROOT/sys"',
              'mount --rbind /dev "$ROOT/dev"', 'mount -t tmpfs tmpfs "$ROOT/tmp"',
              'mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"',
              'mkdir -m 1777 "$ROOT/run/lock"']
    for outside, inside in binds:
        mounts.append(f'mkdir -p "$ROOT{inside}" && mount --bind "{outside}" "$ROOT{inside}"')
    # pivot_root, not chroot alone: the tree is the root of its mount namespace, as a
    # machine's is, so namespaces made inside see their paths as it does.
    script = "\n".join([*mounts, 'cd "$ROOT"', "mkdir -p .host", "pivot_root . .host",
                         "umount -l /.host", "rmdir /.host", 'exec /bin/sh -ec "$0"'])
    return subprocess.run(["unshare", "--mount", "--pid", "--fork", "--uts", "--ipc",
                           "/usr/bin/python3", "-c", REAPER, "sh", "-ec", script, command],
                          env={"ROOT": str(root), "PATH": DEBIAN_PATH, "LC_ALL": "C.UTF-8",
                               "HOME": "/root"}, **kwargs)
