"""The testbeds' archive is the one the host's apt uses, however its sources are written.

Real apt reads a private source configuration (APT_CONFIG), as it would on a
host whose sources live only in sources.list, only in deb822 files, or both.
"""
import pytest

import testbeds

ONE_LINE = """\
# as bookworm's installer and mmdebstrap write it
deb http://deb.debian.org/debian bookworm main contrib
deb-src http://deb.debian.org/debian bookworm main
deb http://deb.debian.org/debian bookworm-updates main
deb http://security.debian.org/debian-security bookworm-security main
"""
DEB822 = """\
Types: deb deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
"""


@pytest.fixture
def apt_sources_in(tmp_path, monkeypatch):
    """Give apt only the source files written into the returned dict's keys."""
    parts = tmp_path / "sources.list.d"
    parts.mkdir()
    config = tmp_path / "apt.conf"
    config.write_text(f'Dir::Etc::SourceList "{tmp_path}/sources.list";\n'
                      f'Dir::Etc::SourceParts "{parts}";\n'
                      f'Dir::State::Lists "{tmp_path}/lists";\n')
    (tmp_path / "lists").mkdir()
    monkeypatch.setenv("APT_CONFIG", str(config))
    monkeypatch.setattr(testbeds, "host_release", lambda: "bookworm")

    def write(files):
        for name, text in files.items():
            (tmp_path / name).write_text(text)
    return write


def test_sources_only_in_sources_list_are_the_testbeds_archive(apt_sources_in):
    apt_sources_in({"sources.list": ONE_LINE})
    assert testbeds.apt_sources() == [
        "deb http://deb.debian.org/debian/ bookworm main contrib",
        "deb http://deb.debian.org/debian/ bookworm-updates main",
        "deb http://security.debian.org/debian-security/ bookworm-security main"]


def test_sources_only_in_a_deb822_file_are_the_testbeds_archive(apt_sources_in):
    apt_sources_in({"sources.list.d/debian.sources": DEB822})
    assert testbeds.apt_sources() == [
        "deb http://deb.debian.org/debian/ bookworm main",
        "deb http://deb.debian.org/debian/ bookworm-updates main",
        "deb http://deb.debian.org/debian-security/ bookworm-security main"]


def test_another_release_gets_the_same_mirrors_with_its_own_suites(apt_sources_in):
    apt_sources_in({"sources.list.d/debian.sources": DEB822})
    assert testbeds.apt_sources("trixie") == [
        "deb http://deb.debian.org/debian/ trixie main",
        "deb http://deb.debian.org/debian/ trixie-updates main",
        "deb http://deb.debian.org/debian-security/ trixie-security main"]


def test_files_apt_ignores_and_other_repositories_are_left_out(apt_sources_in):
    apt_sources_in({
        "sources.list": "deb http://deb.debian.org/debian bookworm main\n",
        "sources.list.d/vendor.list": "deb https://vendor.example/apt nodistro main\n",
        "sources.list.d/old.list.disabled": "deb http://deb.debian.org/debian buster main\n"})
    assert testbeds.apt_sources() == ["deb http://deb.debian.org/debian/ bookworm main"]


def test_a_host_without_a_source_for_its_release_is_told_where_to_add_one(apt_sources_in):
    apt_sources_in({"sources.list": "# nothing\n"})
    with pytest.raises(RuntimeError, match="no source for Debian bookworm.*sources.list"):
        testbeds.apt_sources()


def test_this_hosts_own_sources_give_its_release():
    sources = testbeds.apt_sources()
    assert sources and all(line.split()[2].startswith(testbeds.host_release())
                           for line in sources)
