"""dist/ is an apt repository: its index lists every package built into it."""
import subprocess

import pytest

from package_harness import DIST


def test_dist_index_lists_every_built_package(debs):
    index = (DIST / "Packages").read_text()
    listed = {line.split(": ", 1)[1] for line in index.splitlines()
              if line.startswith("Package: ")}
    assert listed == set(debs)


@pytest.mark.parametrize("name", ["nova-uwsgi-gateway", "nova-uwsgi-gateway-frontend"])
def test_package_owns_nothing_under_other_packages_config_dirs(debs, name):
    """Our conffiles live under our own /etc dir. nginx's conf.d gets one static link
    to ours (the access log format, needed at nginx's http level once for all our sites)."""
    listing = subprocess.run(["dpkg-deb", "-c", str(debs[name])],
                             capture_output=True, text=True, check=True).stdout
    entries = [line.split(None, 5)[5] for line in listing.splitlines()]
    paths = [entry.split(" -> ")[0] for entry in entries]
    assert not [p for p in paths if p.startswith(("./etc/uwsgi-emperor", "./etc/nova/"))]
    under_nginx = [e for e in entries if e.startswith("./etc/nginx/") and not e.endswith("/")]
    assert under_nginx == [f"./etc/nginx/conf.d/nova-uwsgi-gateway-log-format.conf -> "
                           f"../../{name}/nginx/log-format.conf"], under_nginx


def test_every_package_says_which_release_it_was_built_for(debs):
    # 0.3.0+deb12 < 0.3.0+deb13: a release upgrade picks the newer release's build.
    with open("/etc/os-release") as release:
        number = dict(line.rstrip("\n").split("=", 1) for line in release if "=" in line)
    suffix = "+deb" + number["VERSION_ID"].strip('"')
    versions = {name: subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True,
                                     text=True, check=True).stdout.strip()
                for name, deb in debs.items()}
    assert {name: v for name, v in versions.items() if not v.endswith(suffix)} == {}
    assert subprocess.run(["dpkg", "--compare-versions", versions["nova-uwsgi-gateway"],
                           "lt", versions["nova-uwsgi-gateway"].replace(suffix, "+deb99")]).returncode == 0
