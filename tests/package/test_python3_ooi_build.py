"""python3-ooi/build works wherever /tmp lives, e.g. a tmpfs (trixie's default)."""
import os
import subprocess

from package_harness import TOP

OUT = TOP / "build" / "python3-ooi-tmpfs"


def test_python3_ooi_builds_with_tmp_on_another_filesystem_than_the_clone():
    subprocess.run(["rm", "-rf", str(OUT)], check=True)
    # A mount namespace of its own: a fresh tmpfs on /tmp for this build only.
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", 'mount -t tmpfs tmpfs /tmp && exec "$0" "$1"',
         str(TOP / "python3-ooi/build"), str(OUT)],
        capture_output=True, text=True, env=env)
    print(proc.stdout[-5000:], proc.stderr[-5000:])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [deb.name for deb in OUT.glob("python3-ooi_*_all.deb")]
