"""The stages' plumbing (numpynet.stage_entry): a safe dataset name, outputs only inside the
project, and programming errors that keep their traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from numpynet.errors import ConfigError
from numpynet.stage_entry import run_stage, stage_arguments


def parse(tmp_path: Path, *argv: str):
    return stage_arguments("a stage", tmp_path, inputs=["data"], outputs=["out"], argv=list(argv))


def test_paths_inside_the_project_are_accepted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse(tmp_path, "mnist", "--data", "data/x", "--out", "models/mnist")
    assert (args.dataset, args.data, args.out) == ("mnist", Path("data/x"), Path("models/mnist"))


@pytest.mark.parametrize("name", ["x;touch FILE;", "../../../somewhere", "a b", "1abc", ""])
def test_an_unsafe_dataset_name_is_refused(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="a letter followed by"):
        parse(tmp_path, name, "--data", "data/x", "--out", "models/x")


@pytest.mark.parametrize("out", ["../outside", "/tmp/elsewhere", ".", "models/../../outside"])
def test_an_output_outside_the_project_is_refused(tmp_path, monkeypatch, out):
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    with pytest.raises(ConfigError, match="outputs must lie inside the project"):
        parse(project, "mnist", "--data", "data/x", "--out", out)


def test_inputs_may_lie_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert parse(tmp_path, "mnist", "--data", "/elsewhere/x", "--out", "o").data == Path("/elsewhere/x")


@pytest.mark.hostile
@pytest.mark.parametrize("error", [RuntimeError("bug"), OSError(errno.EINVAL, "Invalid argument"),
                                   KeyError("x"), ValueError("bug")])
def test_programming_errors_still_raise_with_their_traceback(error):
    def broken():
        raise error

    with pytest.raises(type(error)):
        run_stage(broken)


@pytest.mark.hostile
def test_a_programming_error_still_shows_its_traceback():
    def buggy_stage():
        return {}["a key no input can explain"]

    with pytest.raises(KeyError):
        run_stage(buggy_stage)
