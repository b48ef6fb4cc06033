"""The evaluate stage on mismatched and damaged artifacts, outputs that would lie, and a failing
disk or memory: exit code 2 and one paragraph naming the file(s), the problem and the fix, never
a traceback, a huge allocation or a silently wrong number, and nothing written.

Each case is a category of hostile input (a model that does not fit its data, labels outside its
classes, damaged weights or processed data, logits that overflow), so an unseen case of the same
kind meets the same check. The stage runs in this process (helpers.stages.run_stage_in_process)
on a tiny project (helpers.project.evaluable_project).
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from ruamel.yaml import YAML

from helpers.hostile_data import ODD_CLASSES, data_damage, failing_writes, huge_header_weights
from helpers.project import (
    NAME,
    PROJECT,
    evaluable_project,
    make_stage_project,
    reseal,
    tiny_params,
    tree_bytes,
    write_data,
    write_live_log,
    write_model,
)
from helpers.stages import STAGE_ARGS, assert_refused, run_stage_in_process, run_stage_process
from numpynet.cli import main as numpynet_main
from numpynet.files import save_npz
from numpynet.model_folder import DATASET_FILE, WEIGHTS_FILE

# ---------------------------------------------------------------------------------------------
# A model evaluated on data it does not fit
# ---------------------------------------------------------------------------------------------


def no_outputs_written(project: Path) -> None:
    for output in (project / "metrics" / f"{NAME}.json", project / "plots" / NAME):
        assert not output.exists(), f"{output} written by a failed stage"
    for folder in (project / "metrics", project / "plots"):
        if folder.is_dir():
            assert not list(folder.iterdir()), f"left in {folder}: {list(folder.iterdir())}"


MISMATCHES = {
    # name: (model keywords, data keywords, what the message must name)
    "input_size": ({"shape": (4, 4, 1)}, {"shape": (5, 5, 1)}, ["4x4x1", "5x5x1", "16", "25"]),
    "image_shape": ({"shape": (2, 8, 1)}, {"shape": (4, 4, 1)}, ["2x8x1", "4x4x1", "input shape"]),
    "more_classes": ({}, {"classes": ("a", "b", "c", "d")}, ["3 classes", "4 classes"]),
    "fewer_classes": ({}, {"classes": ("a", "b")}, ["3 classes", "2 classes"]),
    "class_names": ({"classes": ("x", "y", "z")}, {}, ["class names", "'x'", "'a'"]),
    "standardization": ({"mean": [0.5], "std": [2.0]}, {}, ["standardization", "0.5"]),
}


@pytest.mark.hostile
@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_evaluate_refuses_a_model_that_does_not_fit_the_data(tmp_path, case):
    model_keywords, data_keywords, named = MISMATCHES[case]
    project = evaluable_project(tmp_path / "p", **model_keywords)
    write_data(project, **data_keywords)
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(
        code, stderr, f"models/{NAME}", f"data/processed/{NAME}", f"dvc repro train@{NAME}",
        *named,
    )
    no_outputs_written(project)


@pytest.mark.hostile
@pytest.mark.parametrize("label", [3, 7, -1, 2**40])
def test_evaluate_refuses_labels_outside_the_classes(tmp_path, label):
    project = evaluable_project(tmp_path / "p")
    path = project / "data" / "processed" / NAME / "y_test.npy"
    labels = np.load(path)
    labels[5] = label
    np.save(path, labels)
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, f"data/processed/{NAME}/y_test.npy", str(label),
                   f"dvc repro --force preprocess@{NAME}")
    no_outputs_written(project)


@pytest.mark.hostile
def test_a_model_saved_without_its_dataset_record_still_evaluates(tmp_path):
    # A model folder sealed without dataset.json (save_model(dataset=None)): only the
    # architecture is checked against the data.
    project = evaluable_project(tmp_path / "p")
    (project / "models" / NAME / DATASET_FILE).unlink()
    reseal(project / "models" / NAME)
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    write_data(project, classes=("a", "b"))
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, "3 classes", "2 classes")


# ---------------------------------------------------------------------------------------------
# Damaged weights and processed data
# ---------------------------------------------------------------------------------------------


@pytest.mark.hostile
def test_the_evaluate_stage_refuses_damaged_weights_naming_the_file(tmp_path):
    project = evaluable_project(tmp_path / "p")
    model = project / "models" / NAME
    huge_header_weights(model, dict(np.load(model / WEIGHTS_FILE)))
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, f"models/{NAME}/{WEIGHTS_FILE}",
                   "truncated or corrupt", "rerun the train stage")
    no_outputs_written(project)


@pytest.mark.hostile
@pytest.mark.parametrize("case", ["truncated_images", "huge_header_labels", "pickled_images",
                                  "nan_pixel", "label_too_large", "empty_split",
                                  "meta_classes_string"])
def test_the_evaluate_stage_refuses_damaged_processed_data(tmp_path, case):
    damage, file_name, named = data_damage("test")[case]
    project = evaluable_project(tmp_path / "p")
    damage(project / "data" / "processed" / NAME)
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, f"data/processed/{NAME}/{file_name}", named,
                   f"preprocess@{NAME}")
    no_outputs_written(project)


# ---------------------------------------------------------------------------------------------
# Outputs that would lie: infinite losses, overflowing logits, odd class names
# ---------------------------------------------------------------------------------------------


def scale_layers(project: Path, *factors: float) -> None:
    """Multiply the weights of the model's Linear layers by ``factors``, first layer first."""
    weights = project / "models" / NAME / WEIGHTS_FILE
    arrays = dict(np.load(weights))
    for name, factor in zip(("layers.1.weight", "layers.3.weight"), factors):
        arrays[name] = arrays[name] * np.float32(factor)
    save_npz(weights, arrays)
    reseal(weights.parent)  # a model whose weights are such, not weights edited in place


@pytest.mark.hostile
def test_a_model_sure_of_the_wrong_class_gets_a_large_finite_loss(tmp_path):
    # Probability ~ exp(-1e30) for the true class: log-probabilities stay finite, so does the loss.
    project = evaluable_project(tmp_path / "p")
    scale_layers(project, 1.0, 1e30)
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    text = (project / "metrics" / f"{NAME}.json").read_text()
    loss = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in {text}"))[NAME][
        "loss"]
    assert math.isfinite(loss) and loss > 1e20


@pytest.mark.hostile
def test_a_model_whose_outputs_overflow_is_refused_and_writes_nothing(tmp_path):
    project = evaluable_project(tmp_path / "p")
    scale_layers(project, 1e20, 1e20)  # each finite; their product is not
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, f"models/{NAME}", "NaN or infinite outputs",
                   "rerun the train stage")
    assert not (project / "metrics").exists() and not (project / "plots").exists()


@pytest.mark.hostile
@pytest.mark.filterwarnings("error::UserWarning")  # matplotlib's "Glyph ... missing from font"
def test_odd_class_names_survive_evaluate_info_and_predict(tmp_path, capsys):
    project = evaluable_project(tmp_path / "p", classes=ODD_CLASSES[:3])
    write_data(project, classes=ODD_CLASSES[:3])
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    model = str(project / "models" / NAME)
    Image.new("L", (4, 4), 128).save(tmp_path / "x.png")
    numpynet_main(["predict", str(tmp_path / "x.png"), "--model", model, "--top-k", "3"])
    line = capsys.readouterr().out
    assert line.count("\n") == 1 and "two\\nlines" in line  # one line per image, escaped
    numpynet_main(["info", model])
    assert "classes a,b, say \"hi\", two\\nlines" in capsys.readouterr().out
    numpynet_main(["predict", str(tmp_path / "x.png"), "--model", model, "--json"])
    (row,) = json.loads(capsys.readouterr().out)
    assert {p["class"] for p in row["predictions"]} == set(ODD_CLASSES[:3])  # exact in JSON
    for classes in (ODD_CLASSES[3:6], ODD_CLASSES[5:]):  # the rest, three at a time
        write_data(project, classes=classes)
        write_model(project, classes=classes)
        code, stderr = run_stage_in_process(project, "evaluate")
        assert code == 0, stderr
        assert sorted(p.name for p in (project / "plots" / NAME / "pictures").iterdir()) == [
            "confusion_matrix.png", "learning_curves.png", "misclassified.png",
            "per_class_errors.png"]
    json.loads((project / "metrics" / f"{NAME}.json").read_text())


# ---------------------------------------------------------------------------------------------
# A quota, a read-only or forbidden folder; running out of memory
# ---------------------------------------------------------------------------------------------


FIXES = {errno.ENOSPC: "free disk space", errno.EDQUOT: "quota", errno.EROFS: "read-only",
         errno.EACCES: "permission"}


@pytest.mark.hostile
@pytest.mark.parametrize("code_", [errno.EDQUOT, errno.EROFS, errno.EACCES])
def test_other_environment_errors_on_outputs_are_messages_too(tmp_path, monkeypatch, code_):
    project = evaluable_project(tmp_path / "p")
    with failing_writes(monkeypatch, "metrics/", code_):
        code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, f"metrics/{NAME}.json", FIXES[code_])
    assert not (project / "plots" / NAME).exists()  # nothing half-written: the pictures neither


@pytest.mark.hostile
def test_a_memory_error_names_the_stage(tmp_path, monkeypatch):
    project = evaluable_project(tmp_path / "p")

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 4.00 TiB for an array with shape (2**40,)")

    monkeypatch.setattr("numpynet.evaluation.flip_horizontally", exhausted)
    monkeypatch.setattr("numpynet.nn.model.Sequential.forward", exhausted)
    code, stderr = run_stage_in_process(project, "evaluate")
    assert_refused(code, stderr, f"evaluate@{NAME} ran out of memory", "4.00 TiB",
                   "larger than")
    assert not (project / "metrics").exists()


# ---------------------------------------------------------------------------------------------
# What evaluate writes, against what dvc.yaml declares
# ---------------------------------------------------------------------------------------------


def test_evaluate_writes_exactly_the_plots_dvc_yaml_declares(tmp_path):
    """dvc.yaml declares plots/<name>/pictures and each curve file; evaluate writes the folder."""
    project = evaluable_project(tmp_path / "p")
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    declared = []
    dvc_yaml = YAML(typ="safe").load((PROJECT / "dvc.yaml").read_text(encoding="utf-8"))
    for entry in dvc_yaml["stages"]["evaluate"]["do"]["plots"]:
        (path,) = entry if isinstance(entry, str) else entry.keys()
        declared.append(path.replace("${key}", NAME))
    written = sorted(str(path.relative_to(project)) for path in (project / "plots").rglob("*")
                     if path.is_file())
    folders = [path for path in declared if (project / path).is_dir()]
    assert folders == [f"plots/{NAME}/pictures"]
    assert sorted(path for path in written if not path.startswith(folders[0] + "/")) == sorted(
        path for path in declared if path not in folders)


def test_the_curves_hold_each_epoch_of_the_training_log(tmp_path):
    """Known answer: the tiny log (helpers.project.write_live_log) is one epoch of values 0.5."""
    project = evaluable_project(tmp_path / "p")
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    for name in ("val_accuracy", "val_loss", "train_loss"):
        text = (project / "plots" / NAME / "curves" / f"{name}.csv").read_text(encoding="utf-8")
        assert text == f"epoch,{name}\n1,0.5\n"


# ---------------------------------------------------------------------------------------------
# Stopped while it replaces its outputs: the metrics and the pictures change together or not
# ---------------------------------------------------------------------------------------------

# The renames that replace the outputs, in order (numpynet.files.atomic_outputs): the metrics are
# the first to leave and the last to arrive.
COMMIT_RENAMES = ("metrics moved aside", "plots moved aside", "new plots in place",
                  "new metrics in place")


def evaluate_outputs(project: Path) -> tuple[Path, Path]:
    return project / "metrics" / f"{NAME}.json", project / "plots" / NAME


def outputs_of_an_earlier_run(project: Path) -> tuple[dict, dict]:
    """Evaluate once, then alter the outputs as another run would have left them. Returns the
    bytes of this run's outputs and of the altered ones."""
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    new = tree_bytes(*evaluate_outputs(project))
    metrics, plots = evaluate_outputs(project)
    metrics.write_text(json.dumps({NAME: {"accuracy": 0.1}}))
    (plots / "pictures" / "confusion_matrix.png").write_bytes(b"an earlier run's picture")
    return new, tree_bytes(*evaluate_outputs(project))


def only_the_outputs_are_left(project: Path) -> None:
    """No temporary file or folder beside the outputs: every name is an output's."""
    metrics, plots = evaluate_outputs(project)
    assert sorted(p.name for p in metrics.parent.iterdir()) == [metrics.name]
    assert sorted(p.name for p in plots.parent.iterdir()) == [plots.name]


@pytest.mark.hostile
@pytest.mark.parametrize("step", range(len(COMMIT_RENAMES) + 1),
                         ids=["while-drawing", *(name.replace(" ", "-") for name in COMMIT_RENAMES)])
def test_ctrl_c_as_evaluate_replaces_its_outputs_changes_all_or_none_and_says_which(
    tmp_path, monkeypatch, step
):
    """SIGINT (a real one, to this process) right after one of the renames that replace the
    outputs, or before them, while the pictures are drawn (step 0)."""
    project = evaluable_project(tmp_path / "p")
    new, old = outputs_of_an_earlier_run(project)
    outputs = {str(path) for path in evaluate_outputs(project)}
    real_replace, renames = os.replace, []

    def replace(source, target):
        real_replace(source, target)
        drawn = not renames and step == 0  # the first draft renamed inside the new folder
        if {os.path.abspath(source), os.path.abspath(target)} & outputs:
            renames.append(target)
        if drawn or (step and len(renames) == step):
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(os, "replace", replace)
    code, stderr = run_stage_in_process(project, "evaluate")
    monkeypatch.undo()
    assert code == 130
    if step == 0:
        assert stderr == "interrupted by SIGINT: nothing was written\n"
        assert tree_bytes(*evaluate_outputs(project)) == old
    else:
        assert stderr == (f"interrupted by SIGINT: metrics/{NAME}.json and plots/{NAME} were "
                          f"written in full first\n")
        assert tree_bytes(*evaluate_outputs(project)) == new
        assert len(renames) == len(COMMIT_RENAMES)  # the stop waited for the last rename
    only_the_outputs_are_left(project)


# Runs a stage script (argv: the rename to die after, the script, its arguments) and kills itself
# with SIGKILL right after that rename of one of its --metrics or --plots outputs.
KILLED_AFTER_RENAME = """
import os, runpy, signal, sys
step, script, *args = sys.argv[1:]
outputs = {os.path.abspath(args[args.index(option) + 1]) for option in ("--metrics", "--plots")}
real_replace, renames = os.replace, []

def replace(source, target):
    real_replace(source, target)
    if {os.path.abspath(source), os.path.abspath(target)} & outputs:
        renames.append(target)
        if len(renames) == int(step):
            os.kill(os.getpid(), signal.SIGKILL)

os.replace = replace
sys.argv = [script, *args]
sys.path.insert(0, os.path.dirname(script))
runpy.run_path(script, run_name="__main__")
"""


@pytest.mark.hostile
@pytest.mark.parametrize("step", range(1, len(COMMIT_RENAMES) + 1),
                         ids=[name.replace(" ", "-") for name in COMMIT_RENAMES])
def test_a_kill_as_evaluate_replaces_its_outputs_never_leaves_metrics_beside_other_pictures(
    tmp_path, step
):
    """kill -9 cannot be held off: killed after any rename, the metrics are missing or all is new
    (never new metrics beside old pictures, or old beside new), and the next run sweeps what the
    killed one left and completes."""
    project = make_stage_project(tmp_path / "p", tiny_params())
    write_data(project)
    write_model(project)
    write_live_log(project)
    new, _ = outputs_of_an_earlier_run(project)
    metrics, plots = evaluate_outputs(project)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_RENAME, str(step),
         str(project / "stages" / "evaluate.py"), *STAGE_ARGS["evaluate"]],
        cwd=project, capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if step < len(COMMIT_RENAMES):
        assert not metrics.exists()
    else:
        assert tree_bytes(metrics, plots) == new
    rerun = run_stage_process(project, "evaluate", *STAGE_ARGS["evaluate"])
    assert rerun.returncode == 0, rerun.stderr
    assert tree_bytes(metrics, plots) == new
    only_the_outputs_are_left(project)


@pytest.mark.hostile
def test_evaluate_draws_the_worst_of_many_classes_in_page_wide_pictures(tmp_path):
    # 300 classes, past numpynet.pictures.classes.MAX_CLASSES_DRAWN: before, a matrix 3,000
    # pixels square and bars 3,140 pixels tall, both growing in time and memory with the classes.
    classes = tuple(f"class {k}" for k in range(300))
    project = evaluable_project(tmp_path, classes=classes)
    write_data(project, classes=classes, counts=(600, 300, 600))
    code, stderr = run_stage_in_process(project, "evaluate")
    assert code == 0, stderr
    pictures = project / "plots" / NAME / "pictures"
    with Image.open(pictures / "confusion_matrix.png") as matrix:
        assert matrix.width <= 600 and matrix.height < 800
    with Image.open(pictures / "per_class_errors.png") as bars:
        assert bars.width == 600 and bars.height < 1500
