"""The 'limit' stack: nova's osapi_compute app called in-process, no server.

Loads the app exactly as the gateway's shim does (nova's wsgi_app.init_application),
optionally seeds flavors through the API, then measures the process CPU time per
request for each path, both as uWSGI or mod_wsgi call it and as nova-api's eventlet
server does (with "eventlet.input", nova leaves the request's log line to that
server, so its app does less). Prints one JSON line. Run as the nova user, by /usr/bin/python3
or by uWSGI's embedded interpreter (`uwsgi-core --plugin python3 --pyrun inproc.py`,
arguments then in $INPROC_ARGS).
"""
import io
import json
import os
import sys
import time

from nova.api.openstack import wsgi_app

HEADERS = {"HTTP_X_AUTH_TOKEN": "admin:admin", "HTTP_HOST": "127.0.0.1:8774",
           "HTTP_USER_AGENT": "inproc", "HTTP_ACCEPT": "*/*"}


def environ(method, path, body=b"", eventlet=False):
    env = {"REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path,
           "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8774",
           "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1",
           "wsgi.version": (1, 0), "wsgi.url_scheme": "https", "wsgi.input": io.BytesIO(body),
           "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": True,
           "wsgi.run_once": False, "HTTPS": "on"}
    env.update(HEADERS)
    if eventlet:
        # What eventlet's server adds; nova's RequestLog then leaves the request's log
        # line to that server (requestlog._should_emit): the app as nova-api runs it.
        env["eventlet.input"] = env["wsgi.input"]
    if body:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    return env


def call(app, method, path, body=b"", eventlet=False):
    status = []
    out = app(environ(method, path, body, eventlet), lambda s, h, e=None: status.append(s))
    data = b"".join(out)
    if hasattr(out, "close"):
        out.close()
    return int(status[0].split()[0]), data


def main():
    args = dict(a.split("=", 1) for a in sys.argv[1:] + os.environ.get("INPROC_ARGS", "").split())
    del sys.argv[1:]  # oslo.config parses sys.argv
    app = wsgi_app.init_application("osapi_compute")
    seeded = 0
    for i in range(int(args.get("seed", 0))):
        body = json.dumps({"flavor": {"name": f"bench.{i}", "ram": 512 * (i + 1),
                                      "vcpus": 1 + i % 8, "disk": 10 * (i + 1)}}).encode()
        code, data = call(app, "POST", "/v2.1/flavors", body)
        if code != 200:
            raise SystemExit(f"seeding flavor {i}: {code} {data[:300]!r}")
        seeded += 1
    result = {"seeded": seeded, "status": {}, "cpu_ms": {}, "cpu_ms_eventlet_env": {}}
    reps = int(args.get("reps", 3))
    for path, n in (("/", int(args.get("n_root", 2000))),
                    ("/v2.1/flavors", int(args.get("n_flavors", 400)))):
        code, _ = call(app, "GET", path)
        result["status"][path] = code
        for _ in range(n // 4):  # warm-up
            call(app, "GET", path)
        samples = {False: [], True: []}
        for _ in range(reps):   # alternating, so both see the same machine
            for eventlet in (False, True):
                t0 = time.process_time()
                for _ in range(n):
                    call(app, "GET", path, eventlet=eventlet)
                samples[eventlet].append((time.process_time() - t0) * 1000.0 / n)
        result["cpu_ms"][path] = samples[False]
        result["cpu_ms_eventlet_env"][path] = samples[True]
    print("BENCHJSON " + json.dumps(result), flush=True)


main()
