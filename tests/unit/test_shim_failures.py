"""When the app cannot load, the process exits 22 (uWSGI's "failed to load
the app", which makes a need-app vassal stop) and says why on ONE stderr
line starting "nova-uwsgi-gateway: cannot load 'NAME':" -- no traceback.

nova itself may log to stderr before that (e.g. its eventlet warning), so the
tests demand exactly one gateway line, last, rather than one line in all.
"""
import os

import pytest

FAILED_APP = 22


def assert_refused(out, name):
    assert out.returncode == FAILED_APP, out.describe()
    assert out.response is None
    assert "Traceback" not in out.stderr, out.describe()
    line = out.the_gateway_line()
    prefix = f"nova-uwsgi-gateway: cannot load {name!r}: "
    assert line.startswith(prefix), line
    return line[len(prefix):]


def test_missing_config_file_exits_22_naming_the_file(gateway):
    missing = gateway.etc / "nova.conf"
    missing.unlink()

    out = gateway.run("hello")

    cause = assert_refused(out, "hello")
    assert cause == f"cannot read {missing}: No such file or directory"
    # Reported before nova is even imported: nothing else on stderr.
    assert out.stderr_lines == out.gateway_lines


def test_missing_paste_file_named_by_absolute_path_exits_22(gateway, tmp_path):
    missing = tmp_path / "nowhere" / "ooi-paste.ini"

    out = gateway.run("hello", files=f"{missing};nova.conf")

    cause = assert_refused(out, "hello")
    assert cause == f"cannot read {missing}: No such file or directory"


def test_unreadable_config_file_exits_22_naming_the_file(world_readable_gateway):
    gw = world_readable_gateway
    secret = gw.write("nova.conf", (gw.etc / "nova.conf").read_text(),
                      mode=0o600)
    if os.geteuid() == 0:
        # root reads anything: run the shim as nobody, like a vassal whose
        # uid cannot read /etc/nova/nova.conf (root:nova 0640).
        out = gw.run("hello", as_nobody=True)
    else:
        secret.chmod(0)
        out = gw.run("hello")

    cause = assert_refused(out, "hello")
    assert cause == f"cannot read {secret}: Permission denied"


def test_config_path_that_is_a_directory_exits_22(gateway):
    # A trailing ";" in OS_NOVA_CONFIG_FILES names the directory itself.
    out = gateway.run("hello", files="api-paste.ini;nova.conf;")

    cause = assert_refused(out, "hello")
    assert cause == f"cannot read {gateway.etc}/: Is a directory"


def test_unknown_app_name_exits_22_naming_the_missing_section(gateway):
    out = gateway.run("osapi_ooi")

    cause = assert_refused(out, "osapi_ooi")
    assert cause.startswith("LookupError: No section 'osapi_ooi'")
    assert str(gateway.etc / "api-paste.ini") in cause


def test_nova_that_fails_to_import_exits_22_with_the_import_error(
        gateway, tmp_path):
    # A stand-in for a broken nova install, first on the path; its message
    # spans lines, which the report must fold onto one.
    broken = tmp_path / "broken" / "nova"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text(
        'raise ImportError("nova is broken:\\n  stand-in for a bad install")\n')

    out = gateway.run("hello", pythonpath_first=[broken.parent])

    cause = assert_refused(out, "hello")
    assert cause == "ImportError: nova is broken: stand-in for a bad install"


@pytest.mark.parametrize("paste, expected", [
    ("this is not an ini file\n[[[\n",
     "ConfigFileParseError: Failed to parse {paste}"),
    ("[app:hello]\npaste.app_factory = gateway_test_apps:app_factory\n"
     "label = 100%(oops\n",
     "InterpolationSyntaxError: Error in file {paste}"),
    ("[app:hello]\npaste.app_factory = no_such_module_xyz:app_factory\n",
     "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
], ids=["garbage", "bad-interpolation", "missing-factory-module"])
def test_broken_paste_file_exits_22_with_one_line(gateway, paste, expected):
    path = gateway.write("api-paste.ini", paste)

    out = gateway.run("hello")

    cause = assert_refused(out, "hello")
    assert cause.startswith(expected.format(paste=path)), cause


def test_unparsable_nova_conf_exits_22_naming_the_file(gateway):
    path = gateway.write("nova.conf", "[DEFAULT\ntransport_url = fake://\n")

    out = gateway.run("hello")

    cause = assert_refused(out, "hello")
    assert cause.startswith(f"ConfigFileParseError: Failed to parse {path}")


def test_osapi_compute_entry_checks_its_files_first_too(gateway):
    missing = gateway.etc / "api-paste.ini"
    missing.unlink()

    out = gateway.run("osapi_compute")

    cause = assert_refused(out, "osapi_compute")
    assert cause == f"cannot read {missing}: No such file or directory"
