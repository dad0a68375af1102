"""Helpers of the unit tier: run the shim the way uWSGI does.

A fresh Debian python3 loads a file ``<name>.py`` that is a symlink to
nova_uwsgi_gateway/wsgi.py of the source tree, with real nova and real
PasteDeploy, and config files made by the test.
"""
import json
import os
import shutil
import pathlib
import subprocess
import sys

# The tests import the shim's package in-process too: keep the source tree
# free of bytecode.
sys.dont_write_bytecode = True

TOP = pathlib.Path(__file__).resolve().parents[2]
SHIM = TOP / "nova_uwsgi_gateway" / "wsgi.py"
HERE = pathlib.Path(__file__).resolve().parent
DEBIAN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PYTHON = "/usr/bin/python3"
PREFIX = "nova-uwsgi-gateway:"

# What the subprocess runs: load the entry file as uWSGI's wsgi-file does
# (its __file__ is the symlink's path), then make one WSGI call.
DRIVER = r"""
import json, os, runpy, wsgiref.util
namespace = runpy.run_path(os.environ["GATEWAY_TEST_ENTRY"])
application = namespace["application"]
environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
wsgiref.util.setup_testing_defaults(environ)
seen = {}
def start_response(status, headers, exc_info=None):
    seen["status"] = status
    seen["headers"] = dict(headers)
body = b"".join(application(environ, start_response))
with open(os.environ["GATEWAY_TEST_RESULT"], "w") as out:
    json.dump({"status": seen["status"], "body": body.decode()}, out)
"""

# nova needs a transport_url to parse; noauth2 and the host are values the
# test app reads back to prove nova.conf was parsed.
MINIMAL_NOVA_CONF = """\
[DEFAULT]
transport_url = fake://
host = gateway-unit-test-host
[api]
auth_strategy = noauth2
"""

PASTE_INI = """\
[app:hello]
paste.app_factory = gateway_test_apps:app_factory
label = hello app

[app:world]
paste.app_factory = gateway_test_apps:app_factory
label = world app

[filter:tagger]
paste.filter_factory = gateway_test_apps:filter_factory
tag = tagger

[pipeline:piped]
pipeline = tagger world
"""


class Outcome:
    def __init__(self, proc, result_file):
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.response = None
        if result_file.exists():
            self.response = json.loads(result_file.read_text())

    @property
    def body(self):
        assert self.response is not None, self.describe()
        return json.loads(self.response["body"])

    @property
    def stderr_lines(self):
        return [line for line in self.stderr.splitlines() if line.strip()]

    @property
    def gateway_lines(self):
        return [l for l in self.stderr_lines if l.startswith(PREFIX)]

    def the_gateway_line(self):
        """The one line the shim reports on; fails if there is not exactly one."""
        lines = self.gateway_lines
        assert len(lines) == 1, self.describe()
        # The shim's report is the last thing the process says: nothing of
        # a traceback (or anything else) after it.
        assert self.stderr_lines[-1] == lines[0], self.describe()
        return lines[0]

    def describe(self):
        return (f"exit status {self.returncode}\n--- stderr:\n{self.stderr}"
                f"\n--- stdout:\n{self.stdout[-3000:]}")


class Gateway:
    """A config directory plus entry symlinks, and a way to run them."""

    def __init__(self, root):
        self.root = pathlib.Path(root)
        self.etc = self.root / "etc-nova"
        self.etc.mkdir()
        self.entries = self.root / "share"
        self.entries.mkdir()
        self.write("api-paste.ini", PASTE_INI)
        self.write("nova.conf", MINIMAL_NOVA_CONF)
        # A copy of the code any user can read: the tree may sit in /root (0700).
        self.code = self.root / "code"
        shutil.copytree(TOP / "nova_uwsgi_gateway", self.code / "nova_uwsgi_gateway",
                        ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(HERE / "gateway_test_apps.py", self.code)

    def write(self, name, text, mode=0o644):
        path = self.etc / name
        path.write_text(text)
        path.chmod(mode)
        return path

    def entry(self, name):
        """``<name>.py`` -> the shim, like debian/nova-uwsgi-gateway.links."""
        link = self.entries / f"{name}.py"
        if not link.is_symlink():
            link.symlink_to(self.code / SHIM.relative_to(TOP))
        return link

    def run(self, name, files="api-paste.ini;nova.conf", pythonpath_first=(),
            as_nobody=False, extra_env=None):
        result = self.root / f"result-{name}.json"
        result.unlink(missing_ok=True)
        env = {
            "PATH": DEBIAN_PATH,
            "LANG": "C.UTF-8",
            "HOME": str(self.root),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(
                [str(p) for p in pythonpath_first] + [str(self.code)]),
            "OS_NOVA_CONFIG_DIR": str(self.etc),
            "OS_NOVA_CONFIG_FILES": files,
            "GATEWAY_TEST_ENTRY": str(self.entry(name)),
            "GATEWAY_TEST_RESULT": str(result),
        }
        env.update(extra_env or {})
        argv = [PYTHON, "-P", "-c", DRIVER]
        if as_nobody:
            argv = ["setpriv", "--reuid=nobody", "--regid=nogroup",
                    "--clear-groups"] + argv
        proc = subprocess.run(argv, env=env, cwd=self.root, text=True,
                              capture_output=True, timeout=120)
        return Outcome(proc, result)
