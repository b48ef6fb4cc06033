"""The JSON records numpynet writes for itself: what each accepts, what it refuses (naming the
key), the exact JSON written, on which the DVC hashes of committed outputs depend, and how they
are read back: regular files only, of bounded size."""

import json
import tracemalloc

import numpy as np
import pytest

from helpers.special_files import SPECIAL_KINDS, make_special, within
from numpynet.errors import DataFormatError
from numpynet.model_folder import ARCHITECTURE_FILE, load_model, save_model
from numpynet.nn import MLPConfig, build_mlp
from numpynet.records import (
    Architecture,
    DatasetRecord,
    ProcessedMeta,
    ProvenanceRecord,
    EpochRow,
    EvaluationScores,
    FolderContents,
    MAX_RECORD_BYTES,
    TrainingRecord,
    read_record,
    record_json,
    record_problem,
    write_record,
)

ARCHITECTURE = {"type": "mlp", "input_size": 4, "hidden_sizes": [3], "num_classes": 2,
                "dropout": 0.0}
META = {"classes": ["a", "b"], "image_shape": [2, 2, 3], "sizes": {"train": 4, "val": 0},
        "mean": [0.5, 0.25, 0.125], "std": [0.5, 0.5, 0.5], "layout": "NHWC"}
DATASET = {"name": "shapes", "classes": ["a", "b"], "image_shape": [2, 2, 1], "mean": [0.5],
           "std": [0.25], "layout": "NHWC"}
TRAINING = {"epochs": 3, "select_by": "val_loss", "selected_epoch": 2, "val_accuracy": 0.5,
            "val_loss": 0.75, "augment_flip": True}
PROVENANCE = {"numeric_mode": "exact", "numpy": "2.4.6"}
SCORES = {"accuracy": 0.9942, "loss": 0.11, "selected_epoch": 56}
CONTENTS = {"files": {"architecture.json": "0" * 64, "weights.npz": "ab" * 32}}
ROW = {"epoch": 1, "lr": 0.001, "train_loss": 0.5, "train_accuracy": 0.75, "val_loss": 0.25,
       "val_accuracy": 0.875}
VALID = [(Architecture, ARCHITECTURE), (ProcessedMeta, META), (DatasetRecord, DATASET),
         (TrainingRecord, TRAINING), (ProvenanceRecord, PROVENANCE), (EvaluationScores, SCORES),
         (FolderContents, CONTENTS), (EpochRow, ROW)]


@pytest.mark.parametrize("cls, data", VALID)
def test_each_valid_reference_reads_back_to_the_same_json(cls, data):
    # Guards the refusals below: each base dict is valid on its own.
    record, problem = record_problem(cls, json.loads(json.dumps(data)))
    assert problem is None
    assert record_json(record) == data


@pytest.mark.parametrize(
    "cls, data, problem",
    [
        (Architecture, [1, 2], "expected a JSON object, got list"),
        (Architecture, {k: v for k, v in ARCHITECTURE.items() if k != "input_size"},
         "input_size: missing"),
        (Architecture, {k: v for k, v in ARCHITECTURE.items() if k != "type"}, "type: missing"),
        (Architecture, {**ARCHITECTURE, "type": "cnn"}, "type: got 'cnn'"),
        (Architecture, {**ARCHITECTURE, "activation": "tanh"}, "activation: unknown key"),
        (Architecture, {**ARCHITECTURE, "input_size": 4.0}, "input_size: wrong type float"),
        (Architecture, {**ARCHITECTURE, "input_size": 0}, "input_size: got 0"),
        (Architecture, {**ARCHITECTURE, "input_size": True}, "input_size: wrong type bool"),
        (Architecture, {**ARCHITECTURE, "num_classes": "10"}, "num_classes: wrong type str"),
        (Architecture, {**ARCHITECTURE, "hidden_sizes": "3"}, "hidden_sizes: wrong type str"),
        (Architecture, {**ARCHITECTURE, "hidden_sizes": [3, -1]}, "hidden_sizes: got [3, -1]"),
        (Architecture, {**ARCHITECTURE, "dropout": "0.1"}, "dropout: wrong type str"),
        (Architecture, {**ARCHITECTURE, "dropout": 1.0}, "dropout: got 1.0"),
        (Architecture, {**ARCHITECTURE, "normalization": "Batch"}, "normalization: got 'Batch'"),
        (Architecture, {**ARCHITECTURE, "normalization": None}, "normalization: wrong type"),
        (ProcessedMeta, {**META, "classes": []}, "classes: got []"),
        (ProcessedMeta, {**META, "classes": ["a", 2]}, "classes: item 1: wrong type int"),
        (ProcessedMeta, {**META, "image_shape": [2, 2, 2]}, "image_shape: expected [height, width"),
        (ProcessedMeta, {**META, "image_shape": [2, 2]}, "image_shape: expected [height, width"),
        (ProcessedMeta, {**META, "sizes": {"train": -1}}, "sizes: got"),
        (ProcessedMeta, {**META, "sizes": {"train": True}}, "sizes: entry train: wrong type bool"),
        (ProcessedMeta, {**META, "mean": [0.5]}, "mean, std: expected 3 finite number(s)"),
        (ProcessedMeta, {**META, "std": [0.5, 0.0, 0.5]}, "std positive"),
        (ProcessedMeta, {**META, "layout": "NCHW"}, "layout: got 'NCHW'"),
        (DatasetRecord, {**DATASET, "name": ""}, "name: got ''"),
        (DatasetRecord, {**DATASET, "mean": ["0.5"]}, "mean: item 0: wrong type str"),
        (TrainingRecord, {**TRAINING, "select_by": "val_f1"}, "select_by: got 'val_f1'"),
        (TrainingRecord, {**TRAINING, "selected_epoch": 4}, "selected_epoch: 4 of only 3 epochs"),
        (TrainingRecord, {**TRAINING, "augment_flip": 1}, "augment_flip: wrong type int"),
        (ProvenanceRecord, {"numpy": "2.4.6"}, "numeric_mode: missing"),
        (ProvenanceRecord, {**PROVENANCE, "blas_threads": "2"}, "blas_threads: wrong type str"),
        (EvaluationScores, {**SCORES, "accuracy": 1.5}, "accuracy: got 1.5"),
        (EvaluationScores, {**SCORES, "selected_epoch": 2.0}, "selected_epoch: wrong type float"),
        (FolderContents, {"files": {"weights.npz": "AB" * 32}}, "files: got"),
        (FolderContents, {"files": {"weights.npz": 3}}, "files: entry 'weights.npz': wrong type"),
        (FolderContents, {"files": ["weights.npz"]}, "files: wrong type list"),
        (EpochRow, {**ROW, "epoch": 0}, "epoch: got 0"),
        (EpochRow, {**ROW, "lr": -0.1}, "lr: got -0.1"),
        (EpochRow, {**ROW, "val_accuracy": "0.5"}, "val_accuracy: wrong type str"),
        (EpochRow, {**ROW, "train_accuracy": 1.5}, "train_accuracy: got 1.5"),
        (EpochRow, {k: v for k, v in ROW.items() if k != "val_loss"}, "val_loss: missing"),
    ],
)
def test_a_bad_record_is_refused_naming_the_key(cls, data, problem):
    record, found = record_problem(cls, data)
    assert record is None
    assert problem in found


def test_optional_fields_are_left_out_not_written_as_null():
    assert record_json(EvaluationScores(accuracy=0.5, loss=1.0)) == {"accuracy": 0.5, "loss": 1.0}
    assert record_json(ProvenanceRecord(numpy="2.4.6", numeric_mode="exact")) == PROVENANCE
    # A model saved before numeric modes existed recorded its kernel class instead.
    old, problem = record_problem(ProvenanceRecord, {"kernel_class": "avx2", "numpy": "2.0.2"})
    assert problem is None and old.numeric_mode is None and old.kernel_class == "avx2"
    # A training.json written before augment_flip existed means no mirroring.
    older = {k: v for k, v in TRAINING.items() if k != "augment_flip"}
    assert record_problem(TrainingRecord, older)[0].augment_flip is False


def test_write_and_read_give_the_record_back_and_name_the_file_and_fix(tmp_path):
    path = tmp_path / "meta.json"
    write_record(path, ProcessedMeta(**META))
    assert read_record(path, ProcessedMeta, "rerun it") == ProcessedMeta(**META)
    path.write_text('{"classes": 3}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"{path} is not as numpynet writes it \(.*classes"
                                              r".*\); rerun it"):
        read_record(path, ProcessedMeta, "rerun it")
    path.write_text('{"mean": NaN}', encoding="utf-8")
    with pytest.raises(DataFormatError, match=rf"cannot read {path}: .*; rerun it"):
        read_record(path, ProcessedMeta, "rerun it")
    with pytest.raises(FileNotFoundError):
        read_record(tmp_path / "absent.json", ProcessedMeta, "rerun it")


def test_architecture_text_known_answer_with_numpy_numbers(tmp_path):
    # Plain JSON numbers whatever types the config holds (a shape gives NumPy integers), key
    # sorted, "normalization" only when not "none": the text models saved before it hold, so a
    # retrained model with equal weights keeps its DVC hash.
    config = MLPConfig(np.int64(12), (np.int64(3),), np.int64(2), 0)
    save_model(tmp_path / "model", build_mlp(config, np.random.default_rng(0)), config)
    assert json.loads((tmp_path / "model" / ARCHITECTURE_FILE).read_text()) == {
        "dropout": 0.0, "hidden_sizes": [3], "input_size": 12, "num_classes": 2, "type": "mlp"
    }
    batch = MLPConfig(12, (3,), 2, 0.2, normalization="batch")
    save_model(tmp_path / "batch", build_mlp(batch, np.random.default_rng(0)), batch)
    assert json.loads((tmp_path / "batch" / ARCHITECTURE_FILE).read_text())["normalization"] == (
        "batch"
    )
    assert load_model(tmp_path / "batch").config == batch
    assert load_model(tmp_path / "model").config.normalization == "none"


@pytest.mark.hostile
@pytest.mark.parametrize("kind", SPECIAL_KINDS)
def test_a_record_that_is_no_regular_file_is_refused_at_once(tmp_path, kind):
    path = make_special(tmp_path / "meta.json", kind)
    with pytest.raises(DataFormatError) as caught:
        within(lambda: read_record(path, ProcessedMeta, "rerun it"))
    message = str(caught.value)
    assert message.startswith(f"{path}") and "not a regular file; rerun it" in message, message


@pytest.mark.hostile
def test_a_record_larger_than_its_bound_is_refused_unread(tmp_path):
    path = tmp_path / "dataset.json"
    with open(path, "wb") as stream:  # sparse: no disk space, and nothing worth reading
        stream.truncate(MAX_RECORD_BYTES + 1)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError) as caught:
            read_record(path, DatasetRecord, "rerun it")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert f"holds {MAX_RECORD_BYTES + 1:,} bytes" in message, message
    assert "MAX_RECORD_BYTES in src/numpynet/records.py" in message and "rerun it" in message
    assert peak < 1 << 20
