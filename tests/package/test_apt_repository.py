"""dist/ is an apt repository: its index lists every package built into it."""
import subprocess

from package_harness import DIST


def test_dist_index_lists_every_built_package(debs):
    index = (DIST / "Packages").read_text()
    listed = {line.split(": ", 1)[1] for line in index.splitlines()
              if line.startswith("Package: ")}
    assert listed == set(debs)


def test_package_owns_nothing_under_other_packages_config_dirs(debs):
    listing = subprocess.run(["dpkg-deb", "-c", str(debs["nova-uwsgi-gateway"])],
                             capture_output=True, text=True, check=True).stdout
    paths = [line.split()[5] for line in listing.splitlines()]
    assert not [p for p in paths if p.startswith(("./etc/uwsgi-emperor", "./etc/nova/"))]
    assert not [p for p in paths if p.startswith("./etc/nginx/")]
