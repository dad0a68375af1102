"""lintian on every built package: no errors, no warnings, every override justified."""
import subprocess

import pytest

from package_harness import TOP


@pytest.mark.parametrize("name", ["nova-uwsgi-gateway", "nova-uwsgi-gateway-node",
                                  "nova-uwsgi-gateway-frontend", "ooi-uwsgi-gateway",
                                  "ooi-uwsgi-gateway-frontend", "nova-uwsgi-gateway-metadata",
                                  "python3-ooi"])
def test_lintian_reports_no_error_and_no_warning(debs, name):
    proc = subprocess.run(["lintian", "--pedantic", "-I", "-E", str(debs[name])],
                          capture_output=True, text=True)
    print(proc.stdout, proc.stderr)
    bad = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert not bad
    assert proc.returncode == 0, proc.stderr


def overrides():
    return sorted(TOP.glob("debian/*.lintian-overrides"))


@pytest.mark.parametrize("path", overrides(), ids=lambda p: p.name)
def test_every_lintian_override_has_a_reason_on_the_line_above(path):
    lines = path.read_text().splitlines()
    for number, line in enumerate(lines):
        if line.strip() and not line.startswith("#"):
            assert number > 0 and lines[number - 1].startswith("# "), \
                f"{path.name}:{number + 1} has no reason above it"
