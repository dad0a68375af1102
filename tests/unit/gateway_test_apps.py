"""Paste factories the unit tests' api-paste files point at.

Imported by the shim's subprocess (the tests put this directory on its
PYTHONPATH), never by pytest itself: importing nova here would
monkey-patch pytest's own process with eventlet.

The app factory reads nova's configuration while paste builds the app, so a
response proves nova's config files were parsed *before* the paste file was
loaded, as nova's own loader does.
"""
import json


def app_factory(global_conf, **local_conf):
    import nova.conf

    conf = nova.conf.CONF
    seen = {
        "app": local_conf.get("label", ""),
        "host": conf.host,
        "auth_strategy": conf.api.auth_strategy,
        "config_file": list(conf.config_file),
    }

    def application(environ, start_response):
        body = dict(seen, filters=environ.get("gateway.test.filters", []))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps(body).encode()]

    return application


def filter_factory(global_conf, **local_conf):
    tag = local_conf.get("tag", "filter")

    def make_filter(app):
        def filtered(environ, start_response):
            environ.setdefault("gateway.test.filters", []).append(tag)
            return app(environ, start_response)

        return filtered

    return make_filter
