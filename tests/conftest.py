"""Shared pytest fixtures. Each section belongs to one part of the suite; append new sections."""

# ---------------------------------------------------------------------------------------------
# the numeric mode: the whole suite computes in one, set before NumPy loads
# ---------------------------------------------------------------------------------------------
import os

import pytest

from numpynet.backend import finish_pinning, pin_backend, runnable_modes

# NUMPYNET_TEST_NUMERICS names the mode (tests/test_numeric_modes.py reruns the numeric tests in
# every other mode this CPU runs); by default, the project's default class where the CPU runs it.
TEST_NUMERICS = os.environ.get("NUMPYNET_TEST_NUMERICS") or runnable_modes()[0]
pin_backend(TEST_NUMERICS)
import numpy  # noqa: E402, F401  (loads OpenBLAS with those settings)

finish_pinning()

# ---------------------------------------------------------------------------------------------
# end of numeric mode section
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# data download: a loopback HTTP server (see tests/helpers/loopback.py)
# ---------------------------------------------------------------------------------------------
from helpers.loopback import serve_directory


@pytest.fixture
def http_server(tmp_path, monkeypatch):
    """A server on http://127.0.0.1:<port>/ serving ``tmp_path / "www"``; stopped at teardown."""
    # urllib honours *_proxy variables; loopback requests must never leave the machine.
    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    with serve_directory(root) as server:
        yield server


@pytest.fixture
def scripted_http(monkeypatch):
    """A server whose routes answer by script: trickles, endless bodies, redirects
    (see tests/helpers/scripted_server.py); stopped at teardown."""
    from helpers import scripted_server

    for variable in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(variable, "127.0.0.1,localhost")
    with scripted_server.scripted_server() as running:
        yield running


# ---------------------------------------------------------------------------------------------
# end of data download section
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# real dvc runs: one synthetic dataset, "digits", served over loopback (see helpers/project.py)
# ---------------------------------------------------------------------------------------------
DIGITS = "digits"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """A synthetic MNIST-format dataset named DIGITS on a loopback HTTP server:
    (url, sha256 by role)."""
    from helpers.project import synthetic_mirror

    with synthetic_mirror(tmp_path_factory.mktemp("www"), {DIGITS: 0}) as (url, pins):
        yield url, pins[DIGITS]


@pytest.fixture(scope="module")
def environment(mirror):
    """The environment for `dvc` in a test project, with the mirror set."""
    from helpers.project import dvc_environment

    return dvc_environment(NUMPYNET_MIRROR=mirror[0])
