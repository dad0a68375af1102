"""piuparts on each binary package: install and purge, and upgrade to a newer build.

piuparts installs a package in a throwaway chroot of this host's release,
removes and purges it, and fails on a failed maintainer script, a process left
running, or a file left behind, modified or removed. Its chroots start from a
base (made by testbeds.py) that already holds
every dependency of our packages, so piuparts installs and purges only ours: it
never removes a dependency (sudo's prerm refuses removal) and every leftover it
reports is ours. The runs go one per core at a time (about 25 s each, mostly
piuparts walking its chroot). Each run's log is build/piuparts/<run>.log.
"""
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from lifecycle_testbed import upgrade_repository
from testbeds import DEBIAN_PATH, TOP, apt_sources, cached_tree, host_release

DIST = TOP / "dist"
OUT = TOP / "build" / "piuparts"
DISTRO = host_release()
# piuparts runs dpkg under eatmydata if the chroot has it: no fsync, faster.
TOOLS = ["eatmydata"]
# As on any host where nginx ever ran: its temp dirs under /var/lib/nginx exist
# (our postinst's `nginx -t` makes them; nginx-common's purge removes them).
HOOKS = ['--customize-hook=chroot "$1" nginx -t -q']
PACKAGES = ["nova-uwsgi-gateway", "ooi-uwsgi-gateway", "python3-ooi",
            "nova-uwsgi-gateway-node", "nova-uwsgi-gateway-frontend", "ooi-uwsgi-gateway-frontend",
            "nova-uwsgi-gateway-metadata"]
# The node's upgrade: test_cluster.py, node by node under load.
UPGRADED = ["nova-uwsgi-gateway", "ooi-uwsgi-gateway", "nova-uwsgi-gateway-frontend"]


def debs():
    return {deb.name.split("_")[0]: deb for deb in sorted(DIST.glob("*.deb"))}


def dependencies():
    """The first alternative of every (Pre-)Depends of ours that Debian provides."""
    names = set()
    for deb in debs().values():
        fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Pre-Depends", "Depends"],
                                capture_output=True, text=True, check=True).stdout
        for line in fields.splitlines():
            for relation in line.partition(":")[2].split(","):
                names.add(re.match(r"\s*([a-z0-9][a-z0-9.+-]*)", relation).group(1))
    return sorted(names - set(debs()))


def base_chroot():
    """The release with all our dependencies, made once (about 2 minutes)."""
    # Apt's lists stay in: piuparts' apt-get update then only revalidates them.
    return cached_tree("piuparts", DISTRO, [
        "--variant=apt", "--include=" + ",".join(dependencies() + TOOLS),
        "--skip=cleanup/apt/lists", *HOOKS], tarball=False)


def piuparts(base, name, *args):
    """Run piuparts on the host's archive: (exit status, its log, its stderr)."""
    log = OUT / f"{name}.log"
    log.unlink(missing_ok=True)  # piuparts appends
    # The same sources as the base: the mirror for bookworm itself, the rest as they are.
    mirror, *others = sorted(apt_sources(DISTRO), key=lambda line: line.split()[2] != DISTRO)
    # The chroot on a tmpfs in a mount namespace of the run's own: copied, walked and
    # removed far faster than on disk, and gone with the run. The base is a directory:
    # piuparts copies it in 1 s, but takes 10 s to unpack a .tar.gz.
    tmp = OUT / "tmp"
    cmd = ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs piuparts "$0" && exec "$@"', str(tmp),
           "piuparts", f"--tmpdir={tmp}", f"--existing-chroot={base}", f"--distribution={DISTRO}",
           "--mirror=" + " ".join(mirror.split()[1:2] + mirror.split()[3:]),
           *(f"--extra-repo={line}" for line in others), f"--log-file={log}", *args]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, PATH=DEBIAN_PATH))
    return proc.returncode, log.read_text() if log.exists() else "", proc.stderr


def private_copy(repo, name):
    """A repository of our own to bind-mount: piuparts' lsof check on the chroot
    would see (and piuparts kill) any process using the shared one."""
    copy = OUT / name
    subprocess.run(["rm", "-rf", str(copy)], check=True)
    shutil.copytree(repo, copy)
    return copy


@pytest.fixture(scope="session")
def newer():
    """(a copy of a repository with dist/'s packages and a newer build, the newer version)."""
    repo, version = upgrade_repository()
    return private_copy(repo, "upgrade-repo"), version


@pytest.fixture(scope="session")
def runs(request):
    """The selected tests' runs, started at once, one per core: {run name: future}."""
    if set(PACKAGES) - set(debs()):
        pytest.fail(f"dist/ lacks {sorted(set(PACKAGES) - set(debs()))}: run `make dist` first")
    (OUT / "tmp").mkdir(parents=True, exist_ok=True)
    base, old = base_chroot(), private_copy(DIST, "dist")
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        started = {}
        for item in request.session.items:
            if getattr(item, "module", None) is not sys.modules[__name__]:
                continue
            package = item.callspec.params["package"]
            if item.originalname == "test_piuparts_install_purge_is_clean":
                # dist/ offered while installing: ooi-uwsgi-gateway needs our other packages.
                name, args = f"install-purge-{package}", [
                    "--no-upgrade-test", f"--bindmount={old}", f"--testdebs-repo={old}",
                    str(old / debs()[package].name)]
            else:
                new, version = request.getfixturevalue("newer")
                # dist/ is the archive the old version comes from; the new one is offered
                # only for the upgrade.
                name, args = f"upgrade-{package}", [
                    "--no-install-purge-test", f"--bindmount={old}",
                    f"--extra-repo=deb [trusted=yes] file://{old} ./", f"--bindmount={new}",
                    f"--testdebs-repo={new}", str(new / f"{package}_{version}_all.deb")]
            started[name] = pool.submit(piuparts, base, name, *args)
        yield started


def check(runs, name, verdict):
    """Wait for a run; on failure show the end of its log, what an operator reads first."""
    status, log, stderr = runs[name].result()
    if status or verdict not in log:
        print("\n".join(log.splitlines()[-80:]) + stderr)
        pytest.fail(f"piuparts exited {status}, without '{verdict}': see {OUT / name}.log")


@pytest.mark.parametrize("package", PACKAGES, ids=lambda package: f"{DISTRO}-{package}")
def test_piuparts_install_purge_is_clean(runs, package):
    check(runs, f"install-purge-{package}", "PASS: Installation and purging test.")


@pytest.mark.parametrize("package", UPGRADED, ids=lambda package: f"{DISTRO}-{package}")
def test_piuparts_upgrade_to_newer_version_is_clean(runs, package):
    check(runs, f"upgrade-{package}", "PASS: Installation, upgrade and purging tests.")
