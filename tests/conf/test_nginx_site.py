"""The nginx site and its snippets, as nginx itself reads them (nginx -t)
and as text: what they promise an operator."""
import re
import shlex

import pytest

from conf_harness import (
    CONF_SRC, SNAKEOIL_CERT, SNAKEOIL_KEY, nginx_test, replace_once, use_cert,
    write_nginx_conf)

NGINX_DIR = CONF_SRC / "nginx"
OOI_SITE = CONF_SRC.parent / "ooi-uwsgi-gateway" / "nginx" / "ooi-api.conf"
METADATA_SITE = CONF_SRC.parent / "nova-uwsgi-gateway-metadata" / "nginx" / "nova-metadata.conf"


def directives(path):
    """The file's directives in order, as token lists ({ and } ignored)."""
    text = re.sub(r"#[^\n]*", "", path.read_text())
    statements = re.split(r"[;{}]", text)
    return [shlex.split(s) for s in statements if s.strip()]


def named(path, name):
    return [d[1:] for d in directives(path) if d[0] == name]


def test_nginx_accepts_the_site_with_its_snippets(conf_copy, cert):
    use_cert(conf_copy.etc, *cert)
    conf = write_nginx_conf(conf_copy.root,
                            conf_copy.etc / "nginx" / "nova-api.conf")

    passed, output = nginx_test(conf, conf_copy.root)

    assert passed, output
    assert "syntax is ok" in output
    # Not even a warning (e.g. a deprecated `ssl on` or a duplicate listen).
    assert "[warn]" not in output, output


@pytest.mark.parametrize("which", ["certificate", "key"])
def test_nginx_t_fails_naming_a_missing_certificate_or_key(conf_copy, cert, which):
    # share/check-config relies on `nginx -t` to catch this and name the file.
    use_cert(conf_copy.etc, *cert)
    missing = conf_copy.root / f"no-such-{which}.pem"
    replace_once(conf_copy.etc / "nginx" / "tls.conf",
                 str(cert[0] if which == "certificate" else cert[1]), str(missing))
    conf = write_nginx_conf(conf_copy.root,
                            conf_copy.etc / "nginx" / "nova-api.conf")

    passed, output = nginx_test(conf, conf_copy.root)

    assert not passed, output
    assert str(missing) in output
    assert "test failed" in output


def test_site_listens_on_8774_with_tls_on_ipv4_and_ipv6():
    listens = named(NGINX_DIR / "nova-api.conf", "listen")
    assert sorted(listens) == [["8774", "ssl"], ["[::]:8774", "ssl"]]


def test_tls_is_not_switched_on_with_the_deprecated_ssl_directive():
    for path in NGINX_DIR.glob("*.conf"):
        assert named(path, "ssl") == [], path


def test_tls_protocols_are_exactly_1_2_and_1_3():
    assert named(NGINX_DIR / "tls.conf", "ssl_protocols") == [["TLSv1.2", "TLSv1.3"]]


def test_site_uses_the_shipped_tls_snippet_and_default_snakeoil_pair():
    site = named(NGINX_DIR / "nova-api.conf", "include")
    assert ["/etc/nova-uwsgi-gateway/nginx/tls.conf"] in site
    assert named(NGINX_DIR / "tls.conf", "ssl_certificate") == [[SNAKEOIL_CERT]]
    assert named(NGINX_DIR / "tls.conf", "ssl_certificate_key") == [[SNAKEOIL_KEY]]


def test_script_name_and_host_with_port_come_after_nginxs_uwsgi_params():
    # uwsgi_params sends HTTP_HOST without the port; both values reach uWSGI
    # and the last one wins, so ours must come after the include.
    steps = directives(NGINX_DIR / "uwsgi-params.conf")
    include = steps.index(["include", "/etc/nginx/uwsgi_params"])
    params = {d[1]: (i, d[2]) for i, d in enumerate(steps) if d[0] == "uwsgi_param"}

    assert params["SCRIPT_NAME"] == (params["SCRIPT_NAME"][0], "")
    assert params["HTTP_HOST"][1] == "$host:$server_port"
    assert params["SCRIPT_NAME"][0] > include
    assert params["HTTP_HOST"][0] > include


def test_site_passes_every_location_through_the_gateways_uwsgi_params():
    steps = directives(NGINX_DIR / "nova-api.conf")
    assert ["location", "/"] in steps
    assert ["include", "/etc/nova-uwsgi-gateway/nginx/uwsgi-params.conf"] in steps
    assert ["uwsgi_pass", "nova_uwsgi_gateway_osapi_compute"] in steps


@pytest.mark.parametrize("site, sock", [
    (NGINX_DIR / "nova-api.conf", "osapi_compute"),
    (OOI_SITE, "ooi_api"), (METADATA_SITE, "metadata")], ids=["nova-api", "ooi-api", "metadata"])
def test_site_can_resend_a_dropped_request_to_its_socket_and_only_that(site, sock):
    # Its socket twice, never marked failed: a second try goes to the same vassal.
    # (The last "server" is the server { } block.)
    peer = [f"unix:/run/nova-uwsgi-gateway/{sock}.sock", "max_fails=0"]
    assert named(site, "server") == [peer, peer, []]
    # A timeout is not tried again: nova may still be working on the first one.
    assert named(site, "uwsgi_next_upstream") == [["error"]]


def test_request_body_limit_is_novas_112k():
    assert named(NGINX_DIR / "nova-api.conf", "client_max_body_size") == [["112k"]]


def test_one_header_buffer_smaller_than_uwsgis_64k_packet():
    (value,) = named(NGINX_DIR / "nova-api.conf", "large_client_header_buffers")
    number, size = int(value[0]), int(value[1].rstrip("k")) * 1024
    assert number * size < 65535
