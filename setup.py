"""The WSGI shim that lets uWSGI serve a nova paste application by name."""
from setuptools import setup

setup(
    name="nova-uwsgi-gateway",
    version="0.2.0",
    description="Serve nova's API from a uWSGI vassal behind nginx",
    license="Apache-2.0",
    packages=["nova_uwsgi_gateway"],
    python_requires=">=3.11",
)
