"""What an operator sees when the shim loads an app: the right paste section,
with nova's configuration in place, and nothing registered in nova's DB."""
import json
import pathlib
import subprocess
import sys

import pytest

from shim_harness import DEBIAN_PATH, PYTHON, TOP

sys.path.insert(0, str(TOP))
import nova_uwsgi_gateway  # noqa: E402  (the source tree's, not an installed one)


def test_in_process_imports_come_from_the_source_tree():
    assert nova_uwsgi_gateway.__file__.startswith(str(TOP) + "/")


def test_addon_entry_serves_its_paste_app_with_nova_conf_already_parsed(gateway):
    out = gateway.run("hello")

    assert out.returncode == 0, out.describe()
    assert out.response["status"] == "200 OK"
    body = out.body
    assert body["app"] == "hello app"
    # Read by the app factory while paste built the app: nova.conf (the
    # second file) had been parsed before the paste file (the first) was loaded.
    assert body["host"] == "gateway-unit-test-host"
    assert body["auth_strategy"] == "noauth2"
    assert body["config_file"] == [str(gateway.etc / "api-paste.ini"),
                                   str(gateway.etc / "nova.conf")]
    assert out.gateway_lines == []


def test_the_entry_file_name_picks_the_paste_section(gateway):
    hello = gateway.run("hello")
    world = gateway.run("world")

    assert hello.body["app"] == "hello app", hello.describe()
    assert world.body["app"] == "world app", world.describe()


def test_a_pipeline_section_is_served_with_its_filters(gateway):
    out = gateway.run("piped")

    assert out.returncode == 0, out.describe()
    assert out.body["app"] == "world app"
    assert out.body["filters"] == ["tagger"]


def test_config_files_from_another_directory_with_other_names(gateway):
    gateway.write("ooi-paste.ini", (gateway.etc / "api-paste.ini").read_text())
    gateway.write("gateway.conf",
                  (gateway.etc / "nova.conf").read_text().replace(
                      "gateway-unit-test-host", "other-host"))

    out = gateway.run("hello", files="ooi-paste.ini;gateway.conf")

    assert out.returncode == 0, out.describe()
    assert out.body["host"] == "other-host"


# The database tests: an add-on entry must not create a `nova-<name>` service
# row (nova's API would list it as a service that is forever down). An empty
# sqlite file has no tables at all, so any service lookup or insert fails.
DB_NOVA_CONF = """\
[DEFAULT]
transport_url = fake://
host = gateway-unit-test-host
[api]
auth_strategy = noauth2
[database]
connection = sqlite:///{cell}
[api_database]
connection = sqlite:///{api}
"""


@pytest.fixture
def unusable_databases(gateway):
    cell = gateway.root / "cell.sqlite"
    api = gateway.root / "api.sqlite"
    gateway.write("nova.conf", DB_NOVA_CONF.format(cell=cell, api=api))
    return cell, api


def test_addon_entry_never_touches_novas_database(gateway, unusable_databases):
    out = gateway.run("hello")

    assert out.returncode == 0, out.describe()
    assert out.body["app"] == "hello app"
    # sqlite creates the file on first connect: nothing connected.
    assert [db for db in unusable_databases if db.exists()] == []


def test_osapi_compute_entry_goes_through_novas_service_setup(
        gateway, unusable_databases):
    # The control for the test above: the same config with nova's own name
    # does reach the database (to check/create the nova-osapi_compute row).
    gateway.write("api-paste.ini", "[app:osapi_compute]\n"
                  "paste.app_factory = gateway_test_apps:app_factory\n")

    out = gateway.run("osapi_compute")

    assert out.returncode == 22, out.describe()
    line = out.the_gateway_line()
    assert line.startswith("nova-uwsgi-gateway: cannot load 'osapi_compute': ")
    assert "no such table" in line
    assert any(db.exists() for db in unusable_databases)


class TestConfigFiles:
    """nova_uwsgi_gateway.config_files(): which files, in which order."""

    def test_default_is_novas_paste_file_then_nova_conf(self):
        assert nova_uwsgi_gateway.config_files({}) == [
            "/etc/nova/api-paste.ini", "/etc/nova/nova.conf"]

    def test_reads_os_environ_when_not_given_one(self, monkeypatch):
        monkeypatch.setenv("OS_NOVA_CONFIG_DIR", "/srv/from-environ")
        monkeypatch.delenv("OS_NOVA_CONFIG_FILES", raising=False)
        assert nova_uwsgi_gateway.config_files() == [
            "/srv/from-environ/api-paste.ini", "/srv/from-environ/nova.conf"]

    def test_os_nova_config_dir_moves_both_default_files(self):
        assert nova_uwsgi_gateway.config_files(
            {"OS_NOVA_CONFIG_DIR": "/srv/nova"}) == [
            "/srv/nova/api-paste.ini", "/srv/nova/nova.conf"]

    def test_os_nova_config_files_is_semicolon_separated_and_ordered(self):
        assert nova_uwsgi_gateway.config_files(
            {"OS_NOVA_CONFIG_FILES": "ooi-paste.ini;nova.conf;extra.conf"}) == [
            "/etc/nova/ooi-paste.ini", "/etc/nova/nova.conf",
            "/etc/nova/extra.conf"]

    def test_absolute_names_in_os_nova_config_files_are_kept(self):
        assert nova_uwsgi_gateway.config_files({
            "OS_NOVA_CONFIG_DIR": "/srv/nova",
            "OS_NOVA_CONFIG_FILES":
                "/usr/share/ooi/paste.ini;nova.conf;/etc/nova/nova.conf",
        }) == ["/usr/share/ooi/paste.ini", "/srv/nova/nova.conf",
               "/etc/nova/nova.conf"]

    def test_blanks_around_the_directory_are_ignored(self):
        assert nova_uwsgi_gateway.config_files(
            {"OS_NOVA_CONFIG_DIR": " /srv/nova \n"}) == [
            "/srv/nova/api-paste.ini", "/srv/nova/nova.conf"]

    def test_an_empty_os_nova_config_files_means_the_defaults(self):
        assert nova_uwsgi_gateway.config_files(
            {"OS_NOVA_CONFIG_FILES": ""}) == [
            "/etc/nova/api-paste.ini", "/etc/nova/nova.conf"]


SAME_FILES_CASES = {
    "defaults": {},
    "dir": {"OS_NOVA_CONFIG_DIR": "/srv/nova"},
    "dir-with-blanks": {"OS_NOVA_CONFIG_DIR": " /srv/nova "},
    "files": {"OS_NOVA_CONFIG_FILES": "ooi-paste.ini;nova.conf;extra.conf"},
    "files-with-blanks": {"OS_NOVA_CONFIG_FILES": "ooi-paste.ini; nova.conf"},
    "absolute-file": {"OS_NOVA_CONFIG_DIR": "/srv/nova",
                      "OS_NOVA_CONFIG_FILES": "/usr/share/ooi/paste.ini;nova.conf"},
}


@pytest.fixture(scope="module")
def novas_own_config_files():
    """What nova's loader (used for osapi_compute) picks for each case.
    nova is imported in a child process: importing it here would
    eventlet-patch pytest itself."""
    script = ("import json, sys; from nova.api.openstack import wsgi_app; "
              "cases = json.loads(sys.argv[1]); "
              "print(json.dumps({k: wsgi_app._get_config_files(env) "
              "for k, env in cases.items()}))")
    proc = subprocess.run(
        [PYTHON, "-c", script, json.dumps(SAME_FILES_CASES)],
        capture_output=True, text=True, timeout=60, check=True,
        env={"PATH": DEBIAN_PATH, "PYTHONDONTWRITEBYTECODE": "1"})
    return json.loads(proc.stdout.splitlines()[-1])


@pytest.mark.parametrize("case", list(SAME_FILES_CASES))
def test_add_ons_read_the_same_files_nova_reads_for_osapi_compute(
        case, novas_own_config_files):
    # The shim checks (and for an add-on parses) config_files(), while nova's
    # loader picks osapi_compute's files: they must agree.
    assert (nova_uwsgi_gateway.config_files(SAME_FILES_CASES[case])
            == novas_own_config_files[case])


def nova_with_wsgi_modules(root, source, name="osapi_compute"):
    """Debian's nova with the ``nova.wsgi`` package of nova 30 and later laid
    over it (bookworm's nova 26 has none), its module ``name``'s source given."""
    overlay = root / "nova-30" / "nova"
    (overlay / "wsgi").mkdir(parents=True)
    real = pathlib.Path("/usr/lib/python3/dist-packages/nova")
    (overlay / "__init__.py").write_text(
        f"__path__.append({str(real)!r})\n"
        f"exec(compile(open({str(real / '__init__.py')!r}).read(), __file__, 'exec'))\n")
    (overlay / "wsgi" / "__init__.py").write_text("")
    (overlay / "wsgi" / f"{name}.py").write_text(source)
    return overlay.parent


@pytest.mark.parametrize("name", ["osapi_compute", "metadata"])
def test_novas_own_apps_are_served_by_novas_own_wsgi_module_where_nova_has_one(gateway, name):
    nova_30 = nova_with_wsgi_modules(gateway.root, (
        "import json\n"
        "def application(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Type', 'application/json')])\n"
        "    return [json.dumps({'app': __name__}).encode()]\n"), name)

    out = gateway.run(name, pythonpath_first=[nova_30])

    assert out.returncode == 0, out.describe()
    assert out.body == {"app": f"nova.wsgi.{name}"}


def test_a_failing_nova_wsgi_module_exits_22_with_its_error(gateway):
    nova_30 = nova_with_wsgi_modules(
        gateway.root, "raise RuntimeError('cell mappings missing:\\n  run nova-manage')\n")

    out = gateway.run("osapi_compute", pythonpath_first=[nova_30])

    assert out.returncode == 22, out.describe()
    assert out.the_gateway_line() == ("nova-uwsgi-gateway: cannot load 'osapi_compute': "
                                      "RuntimeError: cell mappings missing: run nova-manage")


def test_a_message_logged_once_reaches_the_log_once_and_others_every_time(caplog):
    nova_uwsgi_gateway.log_once("gateway.test.rpc", "Using RPCClient manually")
    log = __import__("logging").getLogger("gateway.test.rpc")

    with caplog.at_level("WARNING"):
        for _ in range(650):
            log.warning("Using RPCClient manually to instantiate client.")
            log.warning("Something else")

    messages = [record.getMessage() for record in caplog.records]
    assert messages.count("Using RPCClient manually to instantiate client.") == 1
    assert messages.count("Something else") == 650


def test_loading_an_app_logs_novas_rpc_client_warning_once():
    assert ("oslo_messaging.rpc.client", "Using RPCClient manually") in \
        nova_uwsgi_gateway.LOGGED_ONCE
