"""The 'server floor' app: answers every request like nova's GET / (same size), no work.

Loaded through the same paths as nova's app (a bench-only api-paste.ini names it as
osapi_compute), so each server's own CPU per request can be read without nova's.
"""
BODY = (b'{"versions": [{"id": "v2.0", "status": "SUPPORTED", "version": "", '
        b'"min_version": "", "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", '
        b'"href": "https://127.0.0.1:8774/v2/"}]}, {"id": "v2.1", "status": "CURRENT", '
        b'"version": "2.93", "min_version": "2.1", "updated": "2013-07-23T11:33:21Z", '
        b'"links": [{"rel": "self", "href": "https://127.0.0.1:8774/v2.1/"}]}]}')
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]


def app_factory(global_conf, **local_conf):
    return application
