"""The other supported release, proven from the same source by make check.

On a bookworm host that is trixie (and bookworm on a trixie host): its packages
are built on it, with its debhelper, dh-python and stdeb, and the tiers pass there:
unit; conf with its nginx and uWSGI; package (its lintian on its packages and both
autopkgtests on a testbed of it); lifecycle: the scenarios of both init systems and
piuparts, and on trixie (testbeds.FULL_LIFECYCLE) every lifecycle scenario under systemd.

That host is a tree testbeds.py makes and caches, unpacked afresh for each run and
entered with testbeds.as_host: apt sources in deb822 (as that release's installer
writes them), /tmp a tmpfs. cache/ is shared with it, so the testbeds it makes are
cached like this host's.
"""
import re
import subprocess

import pytest

from other_host import BINDS, RELEASE, ROOT, SRC, dist
from testbeds import RELEASES, TOP, as_host

# tests/lifecycle decides for itself what runs on which release (testbeds.FULL_LIFECYCLE).
TIERS = ["tests/unit", "tests/conf", "tests/package", "tests/lifecycle", "tests/test_testbeds.py"]


def test_the_other_releases_packages_are_built_there_and_say_so(built):
    print((built.stdout + built.stderr)[-6000:])
    assert built.returncode == 0, f"make dist on {RELEASE} exited {built.returncode}"
    theirs = sorted(dist().glob("*.deb"))
    ours = sorted((TOP / "dist").glob("*.deb"))
    assert [d.name.split("_")[0] for d in theirs] == [d.name.split("_")[0] for d in ours]
    versions = [subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                               text=True, check=True).stdout.strip() for deb in theirs]
    assert [v for v in versions if not v.endswith(f"+deb{RELEASES[RELEASE]}")] == []


@pytest.mark.parametrize("tier", TIERS, ids=lambda tier: f"{RELEASE}:{tier}")
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
