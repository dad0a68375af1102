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
