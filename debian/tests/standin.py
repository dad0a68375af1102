#!/usr/bin/python3
"""Loopback stand-in for keystone, glance and neutron: just enough for ooi.

Not part of the package under test. ooi's query interface makes nova call out:
/{project}/images/detail becomes glance's GET /v2/images, and
/{project}/os-floating-ip-pools neutron's GET /v2.0/networks. This answers
those with empty lists in the right shape.

Under /identity it is a minimal keystone v3 that accepts every token as user
"admin" (roles admin, member, reader) of project PROJECT, so nova can run with
[api] auth_strategy = keystone: nova's noauth2 context carries no token, and
nova then cannot call glance at all.

Every request is logged to stderr (method, path, status, token present?);
anything unknown is a 404, so an unexpected call shows in the log.

Usage: standin.py PORT   binds 127.0.0.1 only; PORT 0 picks a free port.
The port it listens on is printed to stdout as the first line.
nova.conf:
  [glance]  endpoint_override = http://127.0.0.1:PORT   auth_type = none
  [neutron] endpoint_override = http://127.0.0.1:PORT   auth_type = none
  [keystone_authtoken] auth_type = none
                       endpoint = http://127.0.0.1:PORT/identity/v3
                       www_authenticate_uri = http://127.0.0.1:PORT/identity
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

PROJECT = "0123456789abcdef0123456789abcdef"
PORT = 0


def image(n):
    """A glance v2 image as nova reads it (the schema lists its keys)."""
    return {"id": f"00000000-0000-4000-8000-{n:012d}",
            "name": f"standin-image-{n:04d}", "status": "active",
            "visibility": "public", "protected": False, "owner": PROJECT,
            "created_at": "2020-01-01T00:00:00Z",
            "updated_at": "2020-01-01T00:00:00Z",
            "size": 1024, "disk_format": "qcow2", "container_format": "bare",
            "min_disk": 0, "min_ram": 0, "checksum": None, "tags": []}


def identity(path, token):
    """keystone v3: version discovery and token validation.

    The token "unscoped-token" is valid but scoped to no project.
    """
    v3 = {"id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
          "links": [{"rel": "self",
                     "href": f"http://127.0.0.1:{PORT}/identity/v3/"}],
          "media-types": [{"base": "application/json",
                           "type": "application/vnd.openstack.identity-v3+json"}]}
    if path == "/identity":
        return 300, {"versions": {"values": [v3]}}
    if path == "/identity/v3":
        return 200, {"version": v3}
    if path == "/identity/v3/auth/tokens":
        domain = {"id": "default", "name": "Default"}
        token_body = {
            "methods": ["token"], "audit_ids": ["standin"],
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "issued_at": "2020-01-01T00:00:00.000000Z",
            "user": {"id": "ad000000000000000000000000000001",
                     "name": "admin", "domain": domain}}
        if token != "unscoped-token":
            token_body.update({
                "project": {"id": PROJECT, "name": "admin", "domain": domain},
                "roles": [{"id": "r1", "name": "admin"},
                          {"id": "r2", "name": "member"},
                          {"id": "r3", "name": "reader"}],
                "catalog": []})
        return 200, {"token": token_body}
    return None


def answer(path, token=None):
    """(status, body) for a path without its query string."""
    path = path.rstrip("/")
    if path.startswith("/identity"):
        return identity(path, token) or (404, {"error": path})
    if path == "/v2/images":                       # glance image list
        return 200, {"images": [], "first": "/v2/images",
                     "schema": "/v2/schemas/images"}
    if path == "/v2/schemas/image":                # glanceclient's model
        return 200, {"name": "image",
                     "properties": {k: {} for k in image(0)},
                     "additionalProperties": {"type": "string"}}
    if path in ("", "/v2", "/versions"):           # version discovery
        return 200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                   "links": []}]}
    if path == "/v2.0/networks":                   # neutron networks
        return 200, {"networks": []}
    if path == "/v2.0/extensions":                 # neutron extension list
        return 200, {"extensions": []}
    if path == "/v2.0/floatingips":
        return 200, {"floatingips": []}
    if path == "/v2.0/ports":                      # an instance's ports (metadata)
        return 200, {"ports": []}
    if path == "/v2.0/security-groups":
        return 200, {"security_groups": []}
    return 404, {"error": f"stand-in does not know {path}"}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        status, body = answer(urlsplit(self.path).path,
                              self.headers.get("X-Subject-Token"))
        data = json.dumps(body).encode()
        print(f"standin: {self.command} {self.path} -> {status} "
              f"token={'X-Auth-Token' in self.headers}",
              file=sys.stderr, flush=True)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if "X-Subject-Token" in self.headers:          # keystone echoes it
            self.send_header("X-Subject-Token", self.headers["X-Subject-Token"])
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_HEAD = do_GET

    def log_message(self, *args):                  # our own line is enough
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    PORT = server.server_address[1]
    print(PORT, flush=True)
    server.serve_forever()
