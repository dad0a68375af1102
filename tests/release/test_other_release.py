"""The other supported release, proven from the same source by make check.

On a bookworm host that is trixie (and bookworm on a trixie host): its packages
are built on it, with its debhelper, dh-python and stdeb, and the tiers pass there:
unit; conf with its nginx and uWSGI; package (its lintian on its packages and both
autopkgtests on a testbed of it); the lifecycle scenarios of both init systems.

That host is a tree testbeds.py makes and caches, unpacked afresh for each run and
entered with testbeds.as_host: apt sources in deb822 (as that release's installer
writes them), /tmp a tmpfs. cache/ is shared with it, so the testbeds it makes are
cached like this host's.
"""
import re
import subprocess
import uuid

import pytest

from testbeds import (CACHE, RELEASES, TOP, apt_sources, as_host, cached_tree,
                      copy_tracked_tree, other_release)

RELEASE = other_release()
ROOT = TOP / "build" / "release" / RELEASE
SRC = "/root/src"
BINDS = [(CACHE, f"{SRC}/cache")]
TIERS = ["tests/unit", "tests/conf", "tests/package", "tests/lifecycle/test_init_systems.py",
         "tests/test_testbeds.py"]


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


@pytest.fixture(scope="module")
def built():
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


def test_the_other_releases_packages_are_built_there_and_say_so(built):
    print((built.stdout + built.stderr)[-6000:])
    assert built.returncode == 0, f"make dist on {RELEASE} exited {built.returncode}"
    theirs = sorted((ROOT / SRC.lstrip("/") / "dist").glob("*.deb"))
    ours = sorted((TOP / "dist").glob("*.deb"))
    assert [d.name.split("_")[0] for d in theirs] == [d.name.split("_")[0] for d in ours]
    versions = [subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                               text=True, check=True).stdout.strip() for deb in theirs]
    assert [v for v in versions if not v.endswith(f"+deb{RELEASES[RELEASE]}")] == []


@pytest.mark.parametrize("tier", TIERS)
def test_the_tier_passes_on_the_other_release(built, tier):
    if built.returncode:
        pytest.fail(f"make dist failed on {RELEASE}: nothing to test")
    proc = as_host(ROOT, f"cd {SRC} && /usr/bin/python3 -m pytest {tier}", BINDS,
                   capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    print(log[-20000:])
    # Name what failed in the assertion itself: CI shows little else.
    failed = re.findall(r"^(?:FAILED|ERROR) \S+.*$", log, re.M)
    status = proc.returncode
    assert status == 0, f"{tier} on {RELEASE} exited {status}; " + ("; ".join(failed)
                                                                   or "no test failed")
