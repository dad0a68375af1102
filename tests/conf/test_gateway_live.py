"""nginx run from the site conffiles in front of uwsgi run from the vassal
conffile (an echo app in place of nova): what a client of the gateway sees."""
import json
import shutil
import signal
import subprocess

import pytest

from conf_harness import (
    clean_env, copy_conf, free_port, ipv6_loopback, point_site_at,
    public_tmpdir, start_nginx, stop, use_cert, write_nginx_conf)

KIB = 1024


def curl(url, *args, cacert=None, timeout=20):
    """(exit status, HTTP status, body, curl's verbose stderr)."""
    argv = ["curl", "-sS", "-v", "--max-time", str(timeout), "-o", "-",
            "-w", "\n%{http_code}"]
    argv += ["--cacert", str(cacert)] if cacert else ["--insecure"]
    proc = subprocess.run(argv + list(args) + [url], capture_output=True,
                          env=clean_env(), timeout=timeout + 10)
    body, _, code = proc.stdout.rpartition(b"\n")
    return proc.returncode, int(code or 0), body, proc.stderr.decode(errors="replace")


def get(gw, path="/v2.1/", *args, host="127.0.0.1"):
    return curl(f"https://{host}:{gw.port}{path}", *args, cacert=gw.cert)


def echoed(result):
    rc, code, body, err = result
    assert rc == 0 and code == 200, (rc, code, body[:300], err[-2000:])
    return json.loads(body)


def test_vassal_gets_host_with_port_empty_script_name_and_https(live_gateway):
    seen = echoed(get(live_gateway, "/v2.1/servers"))

    # nova builds the links of its version documents from these.
    assert seen["HTTP_HOST"] == f"127.0.0.1:{live_gateway.port}"
    assert seen["SCRIPT_NAME"] == ""
    assert seen["wsgi.url_scheme"] == "https"
    assert seen["PATH_INFO"] == "/v2.1/servers"


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_vassal_gets_bracketed_ipv6_host_with_port(live_gateway):
    seen = echoed(get(live_gateway, host="[::1]"))

    assert seen["HTTP_HOST"] == f"[::1]:{live_gateway.port}"


def test_32k_keystone_token_reaches_the_app(live_gateway):
    token = "t" * (32 * KIB)

    seen = echoed(get(live_gateway, "/v2.1/", "-H", f"X-Auth-Token: {token}"))

    assert seen["token_length"] == 32 * KIB


def test_largest_header_nginx_lets_through_still_fits_uwsgis_packet(live_gateway):
    # The site's promise: what nginx accepts, uWSGI can take (no 502 upstream).
    def status(size):
        return get(live_gateway, "/v2.1/", "-H", f"X-Auth-Token: {'t' * size}")[1]

    low, high = 32 * KIB, 64 * KIB          # accepted / refused
    assert status(low) == 200 and status(high) == 400
    while high - low > 1:
        middle = (low + high) // 2
        code = status(middle)
        assert code in (200, 400), f"{middle}-byte token: HTTP {code}"
        low, high = (middle, high) if code == 200 else (low, middle)

    assert low > 50 * KIB, low


def test_70k_header_is_refused_by_nginx_with_400(live_gateway):
    rc, code, body, err = get(live_gateway, "/v2.1/", "-H",
                              f"X-Auth-Token: {'t' * (70 * KIB)}")

    assert code == 400, (rc, code, err[-1500:])
    assert b"Request Header Or Cookie Too Large" in body


def test_100k_body_reaches_the_app(live_gateway, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"b" * (100 * KIB))

    seen = echoed(get(live_gateway, "/v2.1/servers", "--data-binary", f"@{body}"))

    assert seen["body_length"] == 100 * KIB


def test_200k_body_is_refused_with_413(live_gateway, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"b" * (200 * KIB))

    rc, code, _, err = get(live_gateway, "/v2.1/servers", "--data-binary", f"@{body}")

    assert code == 413, (rc, code, err[-1500:])


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_tls_1_2_and_1_3_clients_are_served(live_gateway, version):
    result = get(live_gateway, "/v2.1/", f"--tlsv{version}", "--tls-max", version)

    echoed(result)
    assert f"SSL connection using TLSv{version}" in result[3]


# A client able to speak TLS 1.1 at all: OpenSSL 3's default security level
# forbids it on the client side too, which would make a refusal meaningless.
TLS11_CLIENT = ["--tlsv1.1", "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0"]


def test_tls_1_1_client_is_refused(live_gateway):
    rc, code, _, err = get(live_gateway, "/v2.1/", *TLS11_CLIENT)

    assert rc != 0 and code == 0, (rc, code, err[-1500:])
    assert "SSL connection using" not in err


def test_tls_1_1_refusal_is_the_sites_doing_not_the_clients(cert):
    # Control for the test above: the same client gets through to the same
    # site once tls.conf leaves protocols (and ciphers) to the global
    # defaults of nginx.conf, which still allow TLS 1.1.
    root = public_tmpdir("nova-uwsgi-gateway-tls11-")
    nginx = None
    try:
        etc = copy_conf(root / "etc")
        use_cert(etc, *cert)
        tls = etc / "nginx" / "tls.conf"
        tls.write_text("".join(
            line for line in tls.read_text().splitlines(keepends=True)
            if not line.lstrip().startswith(("ssl_protocols", "ssl_ciphers")))
            + "ssl_ciphers DEFAULT:@SECLEVEL=0;\n")
        port = free_port()
        site = point_site_at(etc, port, root / "nothing-listens-here.sock")
        nginx = start_nginx(write_nginx_conf(root, site), root, port)

        rc, code, _, err = curl(f"https://127.0.0.1:{port}/", *TLS11_CLIENT,
                                cacert=cert[0])

        assert "SSL connection using TLSv1.1" in err, err[-1500:]
        assert code == 502  # handshake done; no vassal behind it
    finally:
        if nginx is not None:
            stop(nginx, signal.SIGTERM)
        shutil.rmtree(root)


@pytest.mark.parametrize("method, code", [("GET", 200), ("DELETE", 200), ("POST", 502)])
def test_a_request_its_worker_drops_unanswered_is_sent_again_unless_a_post(
        live_gateway, method, code):
    # A uWSGI 2.0 worker with one thread, reloaded between taking a connection
    # and reading it, exits without an answer; nginx resends what is idempotent.
    marks = live_gateway.root / "marks"
    marks.mkdir(exist_ok=True)
    marks.chmod(0o1777)
    mark = marks / method

    rc, status, body, err = get(live_gateway, f"/exit-once?{mark}", "-X", method)

    assert mark.exists(), "the first try did not reach the app"
    assert status == code, (rc, status, body[:300], err[-1500:])
    if code == 200:
        assert echoed((rc, status, body, err))["PATH_INFO"] == "/exit-once"
