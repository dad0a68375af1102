"""The other supported release's host: a tree testbeds.py makes and caches, with
a clone of this tree in it, after `make dist` there (see test_other_release.py).
"""
import subprocess
import uuid

from testbeds import CACHE, TOP, apt_sources, as_host, cached_tree, copy_tracked_tree, other_release

RELEASE = other_release()
ROOT = TOP / "build" / "release" / RELEASE
SRC = "/root/src"
BINDS = [(CACHE, f"{SRC}/cache")]


def make_variable(name):
    """A variable of the Makefile (the test tools make check installs)."""
    return subprocess.run(["make", "-s", "-f", str(TOP / "Makefile"), "--eval",
                           f"print-var:\n\t@echo $({name})", "print-var"],
                          capture_output=True, text=True, check=True).stdout.split()


def deb822_sources():
    """The archive as one deb822 file, as trixie's installer writes it (and this
    project's bookworm machines have it)."""
    path = TOP / "build" / "release" / f"{RELEASE}.sources"
    path.parent.mkdir(parents=True, exist_ok=True)
    stanzas = []
    for entry in apt_sources(RELEASE):
        _, uri, suite, *components = entry.split()
        stanzas.append(f"Types: deb\nURIs: {uri}\nSuites: {suite}\n"
                       f"Components: {' '.join(components)}\n"
                       "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    path.write_text("\n".join(stanzas))
    return path


def host_tree():
    sources = deb822_sources()
    return cached_tree("host", RELEASE, [
        "--variant=apt",
        "--include=" + ",".join(["apt-utils", "ca-certificates", "dpkg-dev", "git", "make",
                                 *make_variable("TEST_DEPS")]),
        # nova-common's postinst resolves the host name.
        '--setup-hook=printf "127.0.0.1 localhost\\n127.0.1.1 %s\\n" "$(hostname)" '
        '> "$1"/etc/hosts',
        f"--customize-hook=upload {sources} /etc/apt/sources.list.d/debian.sources",
        '--customize-hook=rm -f "$1"/etc/apt/sources.list',
        # As on this project's machines: maintainer scripts start nothing.
        '--customize-hook=printf "#!/bin/sh\\nexit 101\\n" > "$1"/usr/sbin/policy-rc.d',
        '--customize-hook=chmod 0755 "$1"/usr/sbin/policy-rc.d'], inputs=[sources])


def build():
    """A fresh host of RELEASE with a copy of the tracked tree, after `make dist` there."""
    tree = host_tree()
    subprocess.run(["rm", "-rf", str(ROOT)], check=True)
    ROOT.mkdir(parents=True)
    subprocess.run(["tar", "-xf", str(tree), "-C", str(ROOT)], check=True)
    subprocess.run(["cp", "/etc/resolv.conf", str(ROOT / "etc/resolv.conf")], check=True)
    # A machine has an ID (mmdebstrap leaves it empty); trixie's systemd-nspawn needs it.
    (ROOT / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    # A clone (the upgrade from 0.1.0 builds that commit), with this tree's changes
    # on top: make dist and the tests take the tracked files from git.
    subprocess.run(["git", "clone", "-q", str(TOP), str(ROOT / SRC.lstrip("/"))], check=True)
    copy_tracked_tree(ROOT / SRC.lstrip("/"))
    return as_host(ROOT, f"cd {SRC} && git add -A && make dist", BINDS,
                   capture_output=True, text=True)


def dist():
    """The apt repository `make dist` made there."""
    return ROOT / SRC.lstrip("/") / "dist"
