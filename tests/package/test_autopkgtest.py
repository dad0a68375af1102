"""The package's autopkgtest (debian/tests/), run the way users' pipelines run it.

Back-end: autopkgtest-virt-unshare, a throwaway host of this host's release,
its tarball made by testbeds.py (the testbed may break: the test removes and
purges the package).
The whole run sits in its own PID namespace, so no daemon it started outlives it.
"""
import os
import pathlib
import re
import subprocess

import pytest

from package_harness import TOP
from testbeds import DEBIAN_PATH, REAPER, cached_tree, copy_tracked_tree, host_release

OUTPUT = TOP / "build" / "autopkgtest"


def ensure_subordinate_ids():
    """autopkgtest-virt-unshare maps root's subordinate uids/gids."""
    for path in ("/etc/subuid", "/etc/subgid"):
        text = pathlib.Path(path).read_text() if os.path.exists(path) else ""
        if not re.search(r"^root:", text, re.M):
            with open(path, "a") as ids:
                ids.write("root:100000:65536\n")


def debian_depends():
    """What the tests and our packages depend on from Debian, not built here: baked
    into the tarball, so each test installs only our packages (its Depends are
    satisfied, as on a pipeline's warm testbed) instead of downloading nova again."""
    ours = set(re.findall(r"^Package:\s*(\S+)", (TOP / "debian/control").read_text(), re.M))
    ours.add("python3-ooi")  # built here too, from ooi's sdist (python3-ooi/)
    names = set()
    for control in ("debian/tests/control", "debian/control"):
        text = (TOP / control).read_text()
        for field in re.findall(r"^(?:Pre-)?Depends:(.*(?:\n[ \t].*)*)", text, re.M):
            names.update(item.split()[0] for item in field.split(",") if item.strip())
    return sorted(name for name in names - ours if name != "@" and not name.startswith("$"))


def autopkgtest_tarball():
    return cached_tree("autopkgtest", host_release(),
                       ["--variant=apt",
                        "--include=" + ",".join(sorted({"ca-certificates", *debian_depends()}))])


def source_tree():
    """The tracked tree only: autopkgtest copies the tree it is given into the
    testbed, and cache/ and build/ hold gigabytes of testbeds."""
    tree = OUTPUT / "src"
    subprocess.run(["rm", "-rf", str(tree)], check=True)
    copy_tracked_tree(tree)
    return tree


def autopkgtests():
    control = (TOP / "debian/tests/control").read_text()
    return re.findall(r"^Tests:\s*(\S+)", control, re.M)


def expected_checks(name):
    source = (TOP / f"debian/tests/test_{name}.py").read_text()
    return re.findall(r"^def (test_\w+)", source, re.M)


@pytest.mark.parametrize("name", autopkgtests())
def test_autopkgtest_passes_every_check_on_a_fresh_testbed(debs, name):
    ensure_subordinate_ids()
    tarball = autopkgtest_tarball()
    output = OUTPUT / name
    subprocess.run(["rm", "-rf", str(output)], check=True)
    # One run at a time: testbeds share the host's ports (8774, 8787).
    cmd = ["flock", "/run/nova-uwsgi-gateway-autopkgtest.lock",
           "unshare", "--pid", "--fork", "--kill-child", "--mount-proc",
           "/usr/bin/python3", "-c", REAPER,
           "autopkgtest", "--apt-upgrade", f"--env=PATH={DEBIAN_PATH}",
           f"--output-dir={output}", f"--test-name={name}",
           *map(str, debs.values()), str(source_tree()),
           "--", "unshare", "--tarball", str(tarball)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    print(log[-20000:])
    # Name the checks that failed in the assertion itself: CI shows little else.
    failed = re.findall(r"^(?:FAILED|ERROR) \S+.*$", log, re.M)
    status = proc.returncode
    assert status == 0, f"autopkgtest exited {status}; " + ("; ".join(failed) or "no check failed")
    for check in expected_checks(name):
        assert re.search(rf"{check} PASSED", log), f"{check} did not pass"
