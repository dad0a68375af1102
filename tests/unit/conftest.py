"""Fixtures of the unit tier (the helpers live in shim_harness.py)."""
import os
import shutil
import tempfile

import pytest

from shim_harness import Gateway


@pytest.fixture
def gateway(tmp_path):
    return Gateway(tmp_path)


@pytest.fixture
def world_readable_gateway():
    """A Gateway in a directory another user can traverse (pytest's own
    tmp_path lives under a 0700 directory of root's)."""
    root = tempfile.mkdtemp(prefix="nova-uwsgi-gateway-unit-")
    os.chmod(root, 0o755)
    try:
        gw = Gateway(root)
        for d in (gw.etc, gw.entries):
            d.chmod(0o755)
        yield gw
    finally:
        shutil.rmtree(root)
