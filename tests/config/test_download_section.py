"""The download section's bounds: ``download.deadline_s`` and ``download.max_bytes`` refused out
of range naming their key, and their defaults when left out."""

from __future__ import annotations

import pytest

from helpers.project import shipped_params
from numpynet.config import MAX_DEADLINE_S, MAX_DOWNLOAD_BYTES, parse_params
from numpynet.config.file import read_params_file
from numpynet.data.catalog import DEFAULT_DEADLINE_S, DEFAULT_MAX_BYTES
from numpynet.errors import ConfigError


@pytest.fixture
def raw(tmp_path):
    return read_params_file(shipped_params(tmp_path / "params.yaml"))


@pytest.mark.hostile
@pytest.mark.parametrize("key, value, expected", [
    ("deadline_s", 0, "<= 604800"), ("deadline_s", -5, "<= 604800"),
    ("deadline_s", MAX_DEADLINE_S + 1, "<= 604800"), ("deadline_s", "1h", "wrong type str"),
    ("max_bytes", 0, "from 1 to"), ("max_bytes", MAX_DOWNLOAD_BYTES + 1, "from 1 to"),
    ("max_bytes", 8.5e9, "wrong type float"), ("max_bytes", True, "wrong type bool"),
], ids=["deadline-zero", "deadline-negative", "deadline-over-week", "deadline-text",
        "max-zero", "max-over-tib", "max-float", "max-bool"])
def test_bad_bounds_are_rejected_with_their_key(raw, key, value, expected):
    raw["download"][key] = value
    with pytest.raises(ConfigError) as caught:
        parse_params(raw)
    assert f"download.{key}" in str(caught.value) and expected in str(caught.value)


@pytest.mark.hostile
def test_bounds_may_be_left_out_and_take_their_defaults(raw):
    raw["download"] = {"timeout_s": 30}
    download = parse_params(raw).download
    assert (download.deadline_s, download.max_bytes) == (DEFAULT_DEADLINE_S, DEFAULT_MAX_BYTES)
    assert DEFAULT_DEADLINE_S == 3600 and DEFAULT_MAX_BYTES == 8 << 30
