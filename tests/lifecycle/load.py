"""Bounded HTTPS load from inside a testbed; prints every outcome as JSON.

    load.py URL CAFILE CONNECTIONS STOPFILE

Each of CONNECTIONS threads sends GET URL on a fresh TLS connection, one at a
time, until STOPFILE exists. Output: {"ok": [times], "failed": [[time, what]]}
with wall-clock times, so a test can line outcomes up with what it did.
"""
import http.client
import json
import os
import ssl
import sys
import threading
import time
import urllib.parse


def client(url, context, stopfile, ok, failed):
    parts = urllib.parse.urlsplit(url)
    while not os.path.exists(stopfile):
        started = time.time()
        try:
            conn = http.client.HTTPSConnection(parts.hostname, parts.port,
                                               context=context, timeout=30)
            conn.request("GET", parts.path or "/", headers={"X-Auth-Token": "admin:admin"})
            resp = conn.getresponse()
            resp.read()
            conn.close()
            if resp.status == 200:
                ok.append(time.time())
            else:
                failed.append([started, f"HTTP {resp.status} {resp.reason}"])
        except (OSError, http.client.HTTPException) as err:
            failed.append([started, f"{type(err).__name__}: {err}"])
            time.sleep(0.05)


def main(url, cafile, connections, stopfile):
    context = ssl.create_default_context(cafile=cafile)
    ok, failed = [], []
    threads = [threading.Thread(target=client, args=(url, context, stopfile, ok, failed))
               for _ in range(int(connections))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    json.dump({"ok": ok, "failed": failed}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:])
