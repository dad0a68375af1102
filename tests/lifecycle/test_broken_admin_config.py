"""An admin breaks a conffile, then reinstalls (as an upgrade would) under load.

dpkg must finish, its output must name the file and the error, and what is
running must keep serving: nginx its old configuration, the emperor its other
vassals. Each test repairs what it broke.
"""
import pytest

from lifecycle_testbed import CA, Load, use_test_certificate, vassal

SITE = "/etc/nova-uwsgi-gateway/nginx/nova-api.conf"
TLS_CONF = "/etc/nova-uwsgi-gateway/nginx/tls.conf"
OOI_VASSAL = "/etc/ooi-uwsgi-gateway/ooi_api.ini"


@pytest.fixture(scope="module", autouse=True)
def gateway(testbed):
    testbed.apt("install nova-uwsgi-gateway ooi-uwsgi-gateway")
    use_test_certificate(testbed)
    testbed.wait_until(f"curl -sfS -o /dev/null --cacert {CA} https://127.0.0.1:8774/", "8774")


@pytest.fixture
def admin_edit(testbed):
    """edit(path, old, new) as an admin would; the file is put back afterwards."""
    saved = {}

    def edit(path, old, new):
        conf = testbed.path(path)
        saved.setdefault(conf, conf.read_text())
        assert old in conf.read_text(), f"{old!r} not in {path}"
        conf.write_text(conf.read_text().replace(old, new))
    yield edit
    for conf, text in saved.items():
        conf.write_text(text)
    testbed.run("invoke-rc.d nginx reload")


def reinstall_under_load(testbed, package):
    with Load(testbed) as load:
        proc = testbed.apt(f"install --reinstall {package}", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"dpkg did not finish:\n{out}"
    assert load.failed == [], f"requests failed while reinstalling:\n{out}"
    assert load.ok
    return out


def test_a_broken_site_is_named_and_the_old_nginx_keeps_serving(testbed, admin_edit):
    admin_edit(SITE, "client_max_body_size 112k;", "client_max_body_size 112k 1m;")

    out = reinstall_under_load(testbed, "nova-uwsgi-gateway")

    assert "invalid number of arguments in \"client_max_body_size\"" in out
    assert SITE in out


def test_a_missing_key_is_named_and_the_old_nginx_keeps_serving(testbed, admin_edit):
    admin_edit(TLS_CONF, "/etc/ssl/lifecycle/server.key", "/etc/ssl/lifecycle/missing.key")

    out = reinstall_under_load(testbed, "nova-uwsgi-gateway")

    assert "/etc/ssl/lifecycle/missing.key" in out
    assert "No such file" in out


def test_a_broken_add_on_vassal_is_named_and_nova_keeps_serving(testbed, admin_edit):
    nova_master = vassal(testbed)[0]
    admin_edit(OOI_VASSAL, "wsgi-file = /usr/share/nova-uwsgi-gateway/ooi_api.py",
               "wsgi-file = /usr/share/nova-uwsgi-gateway/ooi-api.py")

    out = reinstall_under_load(testbed, "ooi-uwsgi-gateway")

    assert f"{OOI_VASSAL}: its wsgi-file" in out or \
        "vassals-enabled/ooi_api.ini: its wsgi-file" in out, out
    assert vassal(testbed)[0] == nova_master, "nova's vassal was restarted"
