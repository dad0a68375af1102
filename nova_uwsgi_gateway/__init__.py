"""Load a nova paste application by name.

nova's own applications, ``osapi_compute`` and ``metadata``, go through
nova's own WSGI initialisation (config, logging, its service record, which
nova's API hides for these two): nova's ``nova.wsgi.<name>`` module where
nova has one (nova 30 and later; from 2026.1 it also chooses eventlet or
threads), else ``init_application``. Any other name (an add-on such as ooi)
is loaded from the first config file with nova's config and logging set up,
but no ``nova-<name>`` service record: nova's API would show it as a
service that is forever down.
"""
import importlib
import logging
import os

NOVA_APPS = ("osapi_compute", "metadata")
# nova 26 makes its RPC clients the way oslo.messaging warns about, each time:
# about 650 identical lines per worker start. Once per worker says it.
LOGGED_ONCE = [("oslo_messaging.rpc.client", "Using RPCClient manually")]


class LoadError(Exception):
    """The application cannot be loaded; the message names the cause."""


def config_files(environ=os.environ):
    """The files nova reads, the paste file first (nova's own convention)."""
    directory = environ.get("OS_NOVA_CONFIG_DIR", "/etc/nova").strip()
    names = environ.get("OS_NOVA_CONFIG_FILES", "").split(";")
    if names == [""]:
        names = ["api-paste.ini", "nova.conf"]
    return [os.path.join(directory, name) for name in names]


def load(name, environ=os.environ):
    """Return the WSGI application ``name``, or raise LoadError."""
    for logger, prefix in LOGGED_ONCE:
        log_once(logger, prefix)
    files = config_files(environ)
    for path in files:
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise LoadError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        if name in NOVA_APPS:
            return novas_own_application(name)
        from nova.api.openstack import wsgi_app
        wsgi_app.init_global_data(files, name)
        from paste import deploy
        return deploy.loadapp(f"config:{files[0]}", name=name)
    except Exception as exc:  # any cause, reported on one line
        cause = " ".join(str(exc).split()) or "no detail"
        raise LoadError(f"{type(exc).__name__}: {cause}") from exc


def log_once(logger, prefix):
    """Let ``logger``'s messages that start with ``prefix`` through once only."""
    seen = []

    def first_time(record):
        if not record.getMessage().startswith(prefix):
            return True
        seen.append(record)
        return len(seen) == 1
    logging.getLogger(logger).addFilter(first_time)


def novas_own_application(name):
    """nova's own WSGI application ``name``, initialised the way nova does it."""
    try:
        return importlib.import_module(f"nova.wsgi.{name}").application
    except ModuleNotFoundError as exc:
        if exc.name not in (f"nova.wsgi.{name}", "nova.wsgi"):
            raise  # something nova.wsgi imports is missing: a broken nova
    from nova.api.openstack import wsgi_app  # nova before 30 has no nova.wsgi
    return wsgi_app.init_application(name)
