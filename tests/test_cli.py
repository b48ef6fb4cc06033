"""The ``numpynet`` command (numpynet.cli) on careless input: ``check`` refuses sizes that cannot
fit, ``info`` and ``predict`` refuse a model folder that contradicts itself, and running out of
memory is a message naming the command. (Each subcommand's own tests: test_model_info.py,
test_predict.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.project import pets_params, write_model, write_params
from helpers.stages import assert_refused
from numpynet.cli import main as numpynet_main
from numpynet.files import save_npz
from numpynet.model_folder import DATASET_FILE, WEIGHTS_FILE


def console(capsys, *argv: str) -> tuple[int, str]:
    """Run the ``numpynet`` command in this process: its exit code and stderr."""
    try:
        numpynet_main(list(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.mark.hostile
@pytest.mark.parametrize("command", ["info", "predict"])
def test_info_and_predict_refuse_a_folder_whose_record_contradicts_the_model(
    tmp_path, capsys, command
):
    model = write_model(tmp_path, classes=("a", "b", "c"))
    record = json.loads((model / DATASET_FILE).read_text())
    (model / DATASET_FILE).write_text(json.dumps({**record, "classes": ["a", "b"]}))
    argv = ["info", str(model)] if command == "info" else ["predict", "x.png", "--model",
                                                            str(model)]
    code, stderr = console(capsys, *argv)
    assert_refused(code, stderr, DATASET_FILE, "2 classes", "3 outputs",
                   "dvc repro train@")


@pytest.mark.hostile
@pytest.mark.parametrize("command", ["info", "predict"])
def test_info_and_predict_refuse_weights_of_another_dtype(tmp_path, capsys, command):
    model = write_model(tmp_path)
    arrays = dict(np.load(model / WEIGHTS_FILE))
    save_npz(model / WEIGHTS_FILE, {k: v.astype(np.float64) for k, v in arrays.items()})
    argv = ["info", str(model)] if command == "info" else ["predict", "x.png", "--model",
                                                            str(model)]
    code, stderr = console(capsys, *argv)
    assert_refused(code, stderr, WEIGHTS_FILE, "float64", "float32",
                   "rerun the train stage")


def check(tmp_path: Path, params: dict, capsys) -> tuple[int, str]:
    write_params(tmp_path, params)
    with pytest.raises(SystemExit) as exit_:
        numpynet_main(["check", "--params", str(tmp_path / "params.yaml")])
    return exit_.value.code, capsys.readouterr().err


@pytest.mark.hostile
def test_numpynet_check_refuses_a_size_whose_first_layer_cannot_fit(tmp_path, capsys):
    code, stderr = check(tmp_path, pets_params([1024, 1024]), capsys)
    assert code == 2 and stderr.startswith("error: ") and "Traceback" not in stderr
    assert ("datasets.pets.data.size: inputs of 1024x1024x3 (height x width x channels, 3,145,728 "
            "values) with hidden_sizes [1200, 1200] need about 70.3 GiB to train") in stderr
    assert "the first layer alone 3,145,728 x 1,200 weights" in stderr
    assert "declare a smaller size (or mode L) or a narrower first hidden layer" in stderr


@pytest.mark.hostile
def test_the_numpynet_command_names_itself(tmp_path, capsys, monkeypatch):
    model = write_model(tmp_path)

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr("numpynet.model_info.load_model", exhausted)
    with pytest.raises(SystemExit) as caught:
        numpynet_main(["info", str(model)])
    assert caught.value.code == 2
    assert capsys.readouterr().err.startswith("error: numpynet info ran out of memory:")


# ---------------------------------------------------------------------------------------------
# Text that survives any terminal and any file name
# ---------------------------------------------------------------------------------------------

UNICODE_CLASSES = ("кошка", "Ünïcødé ☂", "猫")


def _numpynet_process(*argv: str, encoding: str, cwd: Path) -> subprocess.CompletedProcess:
    """The `numpynet` command in a child process whose stdout and stderr use ``encoding``."""
    environment = {**os.environ, "PYTHONIOENCODING": encoding}
    command = Path(sys.executable).parent / "numpynet"  # the installed console script
    return subprocess.run([str(command), *argv], cwd=cwd, env=environment, capture_output=True,
                          timeout=120)


@pytest.mark.hostile
@pytest.mark.parametrize("encoding", ["ascii", "latin-1", "utf-8"])
def test_info_and_predict_print_any_class_name_on_any_terminal(tmp_path, encoding):
    model = write_model(tmp_path, classes=UNICODE_CLASSES)
    Image.new("L", (4, 4), 128).save(tmp_path / "x.png")
    for argv in (["info", str(model)],
                 ["predict", str(tmp_path / "x.png"), "--model", str(model), "--top-k", "3"]):
        result = _numpynet_process(*argv, encoding=encoding, cwd=tmp_path)
        assert result.returncode == 0, result.stderr.decode(encoding, "replace")
        text = result.stdout.decode(encoding)  # what the terminal receives is in its encoding
        assert "Traceback" not in result.stderr.decode(encoding, "replace")
        for name in UNICODE_CLASSES:
            shown = name.encode(encoding, "backslashreplace").decode(encoding)
            assert shown in text, (name, text)


@pytest.mark.hostile
def test_predict_keeps_one_line_per_image_whatever_the_file_name(tmp_path, capsys):
    model = write_model(tmp_path, classes=("a", "b", "c"))
    odd = tmp_path / "two\nlines\t.png"
    plain = tmp_path / "plain.png"
    for path in (odd, plain):
        Image.new("L", (4, 4), 128).save(path, format="PNG")
    numpynet_main(["predict", str(odd), str(plain), "--model", str(model)])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "two\\nlines\\t.png:" in lines[0] and "plain.png:" in lines[1]


@pytest.mark.hostile
def test_predict_of_standard_input_says_it_reads_files(tmp_path, capsys):
    model = write_model(tmp_path, classes=("a", "b", "c"))
    code, stderr = console(capsys, "predict", "-", "--model", str(model))
    assert_refused(code, stderr, "'-'", "not standard input", "save the image to a file")
