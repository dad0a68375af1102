"""uWSGI entry point: serves the paste app named like the file it is loaded as.

``/usr/share/nova-uwsgi-gateway/osapi_compute.py`` is a symlink to this
file, so ``application`` is nova's ``osapi_compute``.
"""
import os
import sys

from nova_uwsgi_gateway import LoadError, load

# uWSGI's "failed to load the app" status: with need-app the vassal stops
# instead of respawning workers into a half-initialised nova.
FAILED_APP = 22

NAME = os.path.splitext(os.path.basename(__file__))[0]

try:
    application = load(NAME)
except LoadError as exc:
    print(f"nova-uwsgi-gateway: cannot load {NAME!r}: {exc}",
          file=sys.stderr, flush=True)
    raise SystemExit(FAILED_APP) from None
