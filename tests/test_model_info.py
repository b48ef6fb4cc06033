"""`numpynet info` and `--version`: what a saved model says about itself, and clear failures: a
`--metrics` file that is no regular file or too large, a model folder mixing two models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from helpers.project import NAME, write_model
from helpers.special_files import SPECIAL_KINDS, make_special, within
from helpers.stages import assert_refused
from numpynet import __version__
from numpynet.cli import main
from numpynet.errors import DataFormatError
from numpynet.model_folder import DATASET_FILE, WEIGHTS_FILE, save_model
from numpynet.model_info import describe_model
from numpynet.nn import MLPConfig, build_mlp
from numpynet.records import MAX_RECORD_BYTES, DatasetRecord, ProvenanceRecord, TrainingRecord


PROVENANCE = {"blas": "scipy-openblas 0.3.31", "blas_kernel": "SkylakeX", "blas_threads": 2,
              "numeric_mode": "avx512", "numpy": "2.4.6", "numpy_simd": "X86_V4"}
TRAINING = {"epochs": 12, "select_by": "val_accuracy", "selected_epoch": 9,
            "val_accuracy": 0.91234, "val_loss": 0.3}


def saved_model(directory, classes=("cat", "dog", "eel"), seed=0, **records):
    config = MLPConfig(2 * 2 * 3, (5,), len(classes), 0.1, normalization="batch")
    model = build_mlp(config, np.random.default_rng(seed))
    dataset = {"name": "pets", "classes": list(classes), "image_shape": [2, 2, 3],
               "layout": "NHWC", "mean": [0.5] * 3, "std": [0.2] * 3}
    records = {"provenance": PROVENANCE, "training": TRAINING, "dataset": dataset, **records}
    save_model(directory, model, config, dataset=DatasetRecord(**records["dataset"]),
               training=TrainingRecord(**records["training"]),
               provenance=ProvenanceRecord(**records["provenance"]))
    return directory


def test_everything_a_model_records_is_described(tmp_path):
    model = saved_model(tmp_path / "pets")
    metrics = tmp_path / "pets.json"
    metrics.write_text(json.dumps({"pets": {"accuracy": 0.875, "loss": 0.4321}}))
    text = "\n".join(describe_model(model, metrics))
    assert "12 -> 5 -> 3 (batch normalization, dropout 0.1)" in text
    # 12*5 + 5 weights and biases, 5 + 5 normalization scales and shifts, 5*3 + 3 output.
    assert "parameters  93 " in text
    assert "trained on  pets: 2x2x3 images (NHWC), classes cat, dog, eel" in text
    assert "12 epochs; kept epoch 9 (by val_accuracy: validation accuracy 91.23%)" in text
    assert "numeric mode avx512 (OpenBLAS SkylakeX kernel, 2 threads), NumPy 2.4.6" in text
    assert "test        accuracy 87.50%, loss 0.4321" in text


def test_an_exact_mode_model_and_an_older_record_are_described(tmp_path):
    exact = {"numeric_mode": "exact", "numpy": "2.4.6"}
    text = "\n".join(describe_model(saved_model(tmp_path / "a", provenance=exact)))
    assert "computed    numeric mode exact, NumPy 2.4.6" in text.splitlines()
    # Saved before numeric modes existed: the class was called kernel_class.
    older = {**PROVENANCE, "kernel_class": "avx2"}
    del older["numeric_mode"]
    text = "\n".join(describe_model(saved_model(tmp_path / "b", provenance=older)))
    assert "numeric mode avx2 (OpenBLAS SkylakeX kernel" in text


def test_metrics_are_found_under_the_dataset_name_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved_model(tmp_path / "models" / "pets")
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "pets.json").write_text('{"pets": {"accuracy": 0.5, "loss": 1.0}}')
    assert any("accuracy 50.00%" in line for line in describe_model("models/pets"))


def test_many_classes_are_listed_up_to_ten(tmp_path):
    model = saved_model(tmp_path / "m", classes=[f"c{i}" for i in range(25)])
    line = next(line for line in describe_model(model) if line.startswith("trained on"))
    assert "c9, ... (25 in all)" in line and "c10" not in line


def test_a_model_from_before_these_records_is_described_with_what_it_has(tmp_path):
    config = MLPConfig(4, (3,), 2, 0.0)
    save_model(tmp_path / "old", build_mlp(config, np.random.default_rng(0)), config)
    lines = describe_model(tmp_path / "old")
    assert [line.split()[0] for line in lines] == ["model", "network", "parameters"]


@pytest.mark.parametrize("text", ['{"name": "pets"}', '{"classes": 3, "image_shape": [1]}'])
def test_a_damaged_record_is_named(tmp_path, text):
    model = saved_model(tmp_path / "pets")
    (model / DATASET_FILE).write_text(text)
    with pytest.raises(DataFormatError, match=r"dataset.json is not as numpynet writes it"):
        describe_model(model)


def test_cli_version_info_and_a_missing_model(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out == f"numpynet {__version__}\n"
    main(["info", str(saved_model(tmp_path / "pets"))])
    assert "parameters  93 " in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(tmp_path / "nothing")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "no model folder" in error and "Traceback" not in error


@pytest.mark.hostile
def test_info_refuses_the_metrics_of_another_dataset_naming_both(tmp_path, capsys):
    model = write_model(tmp_path)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"blobs": {"accuracy": 0.5, "loss": 1.0, "selected_epoch": 1}}))
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(model), "--metrics", str(other)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert "holds the test scores of blobs, not of" in error
    assert f"metrics/{model.name}.json" in error


@pytest.mark.hostile
@pytest.mark.parametrize("file_name", ["metrics", "training.json"])
def test_info_refuses_a_nan_it_would_print_as_a_fact(tmp_path, capsys, file_name):
    model = write_model(tmp_path)
    metrics = tmp_path / "m.json"
    metrics.write_text(json.dumps({NAME: {"accuracy": 0.9, "loss": 0.1}}))
    target = metrics if file_name == "metrics" else model / file_name
    target.write_text(target.read_text().replace("0.1", "NaN").replace("0.5", "NaN"))
    with pytest.raises(SystemExit) as caught:
        main(["info", str(model), "--metrics", str(metrics)])
    assert caught.value.code == 2
    assert_refused(2, capsys.readouterr().err, str(target), "NaN is no JSON number")


def info(capsys, *argv) -> tuple[int, str]:
    """``numpynet info ARGV``: (exit code, stderr)."""
    try:
        main(["info", *map(str, argv)])
        code = 0
    except SystemExit as caught:
        code = caught.code
    return code, capsys.readouterr().err


@pytest.mark.hostile
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_info_refuses_a_metrics_file_that_is_no_regular_file_at_once(tmp_path, capsys, kind):
    model = write_model(tmp_path)
    metrics = make_special(tmp_path / "metrics.json", kind)
    code, stderr = within(lambda: info(capsys, model, "--metrics", metrics))
    assert_refused(code, stderr, str(metrics), "not a regular file", "--metrics")


@pytest.mark.hostile
def test_info_refuses_a_metrics_file_past_its_bound_unread(tmp_path, capsys):
    model = write_model(tmp_path)
    metrics = tmp_path / "metrics.json"
    with open(metrics, "wb") as stream:  # sparse: a terabyte on no disk space
        stream.truncate(1 << 40)
    code, stderr = within(lambda: info(capsys, model, "--metrics", metrics))
    assert_refused(code, stderr, str(metrics), "1,099,511,627,776 bytes",
                   f"{MAX_RECORD_BYTES:,}", "MAX_RECORD_BYTES in src/numpynet/records.py")


@pytest.mark.hostile
@pytest.mark.parametrize("file_name", [DATASET_FILE, WEIGHTS_FILE])
def test_info_refuses_a_model_folder_mixing_two_models(tmp_path, capsys, file_name):
    ours = saved_model(tmp_path / "pets")
    # Another model of the same shapes, trained on another dataset.
    other = saved_model(tmp_path / "other", seed=1,
                        dataset={"name": "fashion", "classes": ["sandal", "shirt", "bag"],
                                 "image_shape": [2, 2, 3], "mean": [0.5] * 3, "std": [0.2] * 3})
    shutil.copyfile(other / file_name, ours / file_name)
    code, stderr = info(capsys, ours)
    assert_refused(code, stderr, f"{file_name} in {ours} does not belong", "copy the whole folder",
                   "dvc repro train@pets")


@pytest.mark.hostile
def test_info_refuses_json_nested_too_deeply_as_a_message(tmp_path, capsys):
    """A 200 KB metrics file of "[[[[…": Python's json raises RecursionError, no ValueError."""
    model = write_model(tmp_path)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000)
    with pytest.raises(SystemExit) as exit_info:
        main(["info", str(model), "--metrics", str(deep)])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert "nested too deeply" in error and str(deep) in error


@pytest.mark.hostile
def test_info_given_a_device_says_it_is_no_model_folder(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["info", "/dev/null"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert "/dev/null is no folder, not a model folder" in error and "move" not in error
