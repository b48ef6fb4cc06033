"""What users rely on DVC for, proven with real `dvc` in temporary git repositories.

The run-cache (a params set that already ran never trains again, in this clone or a fresh one),
queued experiments running their own code, params written the way `dvc exp run -S` writes them,
unsafe dataset names refused before any stage runs, code deps that rerun what they affect, the
same bytes under another BLAS kernel or thread count, and a readable `dvc exp show`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.project import (
    base_params,
    cached_stages,
    dvc,
    dvc_environment,
    git,
    idx_dataset,
    make_built_dvc_project,
    make_dvc_project,
    private_copy,
    read_params,
    ran_stages,
    tree_digest,
    write_params,
)
from numpynet.backend import EXACT, KERNEL_CLASSES, runnable_modes

pytestmark = pytest.mark.slow

NAME = "digits"  # the dataset of the mirror fixture (tests/conftest.py)
CHAIN = {f"{stage}@{NAME}" for stage in ("download", "preprocess", "train", "evaluate")}


@pytest.fixture(scope="module")
def built(tmp_path_factory, mirror, environment):
    """The project on the synthetic dataset after one `dvc repro`, committed."""
    repo = tmp_path_factory.mktemp("built") / "project"
    # Wide enough that the BLAS splits its work between threads.
    make_built_dvc_project(repo, base_params({NAME: idx_dataset(mirror[1])}, hidden_sizes=[256]),
                       environment)
    return repo


@pytest.fixture
def project(built, tmp_path):
    return private_copy(built, tmp_path / "project")


def test_returning_to_a_params_set_restores_every_stage_from_the_run_cache(project, environment):
    changed = dvc("exp", "run", "-S", "train.lr=0.003", cwd=project, env=environment)
    assert {f"train@{NAME}", f"evaluate@{NAME}"} <= ran_stages(changed.stdout)
    back = dvc("exp", "run", "-S", "train.lr=0.001", cwd=project, env=environment)
    assert ran_stages(back.stdout) == set(), back.stdout
    assert {f"train@{NAME}", f"evaluate@{NAME}", "validate"} <= cached_stages(back.stdout)


def test_a_fresh_clone_trains_nothing_for_a_pushed_params_set(project, environment, tmp_path):
    dvc("remote", "add", "-d", "storage", str(tmp_path / "remote"), cwd=project, env=environment)
    git("commit", "-qam", "remote", cwd=project, env=environment)
    dvc("push", cwd=project, env=environment)
    dvc("exp", "run", "-S", "train.lr=0.003", cwd=project, env=environment)
    # The experiment's outputs and every stage run recorded so far.
    dvc("push", "--run-cache", cwd=project, env=environment)
    offline = {**environment, "NUMPYNET_MIRROR": "http://127.0.0.1:9/unreachable"}

    pulled = tmp_path / "pulled"
    git("clone", "-q", str(project), str(pulled), cwd=tmp_path, env=offline)
    dvc("pull", "--run-cache", cwd=pulled, env=offline)
    again = dvc("exp", "run", "--pull", "-S", "train.lr=0.003", cwd=pulled, env=offline)
    # Evaluate's outputs go to git, not to the remote, so a clone may rerun it (seconds).
    assert ran_stages(again.stdout) <= {f"evaluate@{NAME}"}, again.stdout
    assert f"train@{NAME}" in cached_stages(again.stdout)

    repro_pull = tmp_path / "repro-pull"
    git("clone", "-q", str(project), str(repro_pull), cwd=tmp_path, env=offline)
    result = dvc("repro", "--pull", cwd=repro_pull, env=offline)
    assert ran_stages(result.stdout) == set(), result.stdout
    assert (repro_pull / "models" / NAME / "weights.npz").is_file()
    params = (repro_pull / "params.yaml").read_text(encoding="utf-8")
    (repro_pull / "params.yaml").write_text(params.replace("lr: 0.001", "lr: 0.003"), encoding="utf-8")
    result = dvc("repro", "--pull", cwd=repro_pull, env=offline)
    assert ran_stages(result.stdout) <= {f"evaluate@{NAME}"}, result.stdout
    assert f"train@{NAME}" in cached_stages(result.stdout)


def test_a_queued_experiment_runs_its_own_code(project, environment):
    """The queued tree's evaluation code, not the workspace's nor the installed package's."""
    evaluation = project / "src" / "numpynet" / "evaluation.py"
    original = evaluation.read_text(encoding="utf-8")
    evaluation.write_text(
        original + "\n\n_real = loss_and_accuracy\n\n\ndef loss_and_accuracy(logits, labels):\n"
        "    return _real(logits, labels)[0], 0.123\n",
        encoding="utf-8",
    )
    dvc("exp", "run", "--queue", "-n", "own-code", cwd=project, env=environment)
    evaluation.write_text(original, encoding="utf-8")  # the workspace moves on
    dvc("exp", "run", "--run-all", cwd=project, env=environment)
    shown = json.loads(dvc("exp", "show", "--json", cwd=project, env=environment).stdout)
    runs = [run for baseline in shown for exp in baseline.get("experiments") or []
            for run in exp["revs"] if run.get("name") == "own-code"]
    assert runs, f"no experiment named own-code in {shown}"
    metrics = runs[0]["data"]["metrics"][f"metrics/{NAME}.json"]["data"]
    assert metrics[NAME]["accuracy"] == 0.123


def test_numbers_as_dvc_writes_them_are_numbers(project, environment):
    result = dvc("exp", "run", "-S", "train.lr=0.00001", "-S", "train.epochs=1", cwd=project,
                 env=environment)
    assert f"train@{NAME}" in ran_stages(result.stdout)
    assert "lr: 1e-05" in (project / "params.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["x;touch INJECTED;", "x$(touch INJECTED)", "../../../outside"])
def test_unsafe_dataset_names_are_refused_before_any_stage_runs(project, environment, name):
    params = base_params({name: {"data": {"format": "idx"}, "train": {}}})
    write_params(project, params)
    failed = dvc("repro", cwd=project, env=environment, check=False)
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert "Running stage 'download@" not in output, output
    if ".." not in name:  # DVC itself refuses `..` names first: two stages' outputs collide
        assert "Running stage 'validate'" in output and "a letter followed by" in output, output
    assert not (project / "INJECTED").exists()
    assert not (project.parent / "outside").exists()
    check = subprocess.run(
        [str(Path(sys.executable).parent / "numpynet"), "check"],
        cwd=project, capture_output=True, text=True, env=environment,
    )
    assert check.returncode == 2
    assert f"datasets.{name!r}" in check.stderr or f"datasets.{name}" in check.stderr, check.stderr
    assert "a letter followed by" in check.stderr


def test_a_stage_never_writes_outside_the_project(tmp_path):
    env = dvc_environment()
    # Valid params (the stage reads its numeric mode from them first), never downloaded.
    pins = {role: "0" * 64 for role in ("train_images", "train_labels", "test_images",
                                        "test_labels")}
    repo = make_dvc_project(tmp_path / "project", base_params({NAME: idx_dataset(pins)}), env)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "stages/train.py", NAME, "--data", f"data/processed/{NAME}",
         "--model", str(victim), "--live", f"dvclive/{NAME}",
         "--checkpoint", f"checkpoints/{NAME}.npz"],
        cwd=repo, capture_output=True, text=True, env=env,
    )
    assert result.returncode == 2, result.stderr
    assert "inside the project" in result.stderr and "Traceback" not in result.stderr
    assert (victim / "keep.txt").read_text(encoding="utf-8") == "precious"


def test_a_code_change_reruns_the_stages_that_import_it(project, environment):
    with open(project / "src" / "numpynet" / "data" / "formats" / "raw_dataset.py", "a", encoding="utf-8") as f:
        f.write("# an edit\n")
    status = dvc("status", "--json", cwd=project, env=environment).stdout
    changed = set(json.loads(status))
    assert f"preprocess@{NAME}" in changed
    assert f"train@{NAME}" not in changed and f"download@{NAME}" not in changed


@pytest.mark.skipif(runnable_modes()[0] == EXACT, reason="no x86-64 kernel class here")
def test_preprocess_bytes_do_not_depend_on_the_blas_kernel_or_numpy_dispatch(
    project, environment
):
    digests = []
    # The CPU's own choice, then the oldest kernel with NumPy at its baseline, then the AVX2 one.
    for setting in ({}, {"OPENBLAS_CORETYPE": "Prescott", "NPY_DISABLE_CPU_FEATURES":
                         "X86_V3,X86_V4,AVX512_ICL,AVX512_SPR"},
                    {"OPENBLAS_CORETYPE": "Haswell"}):
        # Without this process's own pin (tests/conftest.py), which its children inherit.
        env = {key: value for key, value in environment.items()
               if key not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
        env.update(setting)
        dvc("repro", "--force", "-s", f"preprocess@{NAME}", cwd=project, env=env)
        digests.append(tree_digest(project / "data" / "processed"))
    assert digests[0] == digests[1] == digests[2]


def test_training_bytes_do_not_depend_on_runs_blas_kernel_or_threads(project, environment):
    """In the project's default mode the pin overrides whatever the environment asks for."""
    digests, provenances = [], []
    for setting in ({"OPENBLAS_NUM_THREADS": "2"}, {"OPENBLAS_NUM_THREADS": "2"},
                    {"OPENBLAS_NUM_THREADS": "4", "OPENBLAS_CORETYPE": "Sandybridge",
                     "NPY_DISABLE_CPU_FEATURES": "X86_V4"}):
        # Without this process's own pin (tests/conftest.py), which its children inherit.
        env = {key: value for key, value in environment.items()
               if key not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
        env.update(setting)
        dvc("repro", "--force", "-s", f"train@{NAME}", f"evaluate@{NAME}", cwd=project, env=env)
        digests.append(tree_digest(project / "models", project / "metrics", project / "plots"))
        provenances.append(json.loads((project / "models" / NAME / "provenance.json").read_text()))
    assert digests[0] == digests[1] == digests[2]
    mode = runnable_modes()[0]
    assert [p["numeric_mode"] for p in provenances] == [mode] * 3
    if mode in KERNEL_CLASSES:
        # The class's choice: its kernel on 2 threads whatever the environment asks for.
        kernel = KERNEL_CLASSES[mode].openblas_coretype
        assert [(p["blas_kernel"], p["blas_threads"]) for p in provenances] == [(kernel, 2)] * 3


@pytest.mark.skipif(runnable_modes()[0] == EXACT, reason="exact is this machine's only mode")
def test_switching_the_numeric_mode_reruns_exactly_train_and_evaluate(project, environment):
    params = read_params(project)
    params["numerics"]["mode"] = EXACT
    write_params(project, params)
    # validate checks the whole params file whatever changes in it (its marker stays the same,
    # so nothing downstream of it reruns for that); of the stages that compute, exactly the two
    # whose bytes depend on the mode rerun.
    ran = ran_stages(dvc("repro", cwd=project, env=environment).stdout)
    assert ran == {"validate", f"train@{NAME}", f"evaluate@{NAME}"}
    provenance = json.loads((project / "models" / NAME / "provenance.json").read_text())
    # Exact mode records no kernel or thread count: they change no bit.
    assert provenance["numeric_mode"] == EXACT and "blas_kernel" not in provenance
    lock = (project / "dvc.lock").read_text(encoding="utf-8")
    assert lock.count("numerics.mode: exact") == 2, "dvc.lock says what made the results"


def test_exp_show_in_a_170_column_terminal_shows_the_metrics_and_the_changed_params(
    project, environment
):
    """What `dvc exp show` puts on screen: in a terminal it draws the whole table and pages it
    with `less -S`, so a 170-column window shows the first 170 characters of every line. The
    training's live progress (epoch, validation accuracy, DVCLive's step) comes first and takes
    about 40 of them."""
    dvc("exp", "run", "-S", "train.lr=0.003", "-S", "train.epochs=2", cwd=project, env=environment)
    table = dvc("exp", "show", "--no-pager", cwd=project, env={**environment, "COLUMNS": "1024"})
    screen = [line[:170] for line in table.stdout.splitlines()]
    header = next(line for line in screen if "Experiment" in line)
    for column in (f"{NAME}.epoch", f"{NAME}.val_accuracy", f"{NAME}.accuracy", f"{NAME}.loss",
                   "train.lr", "train.epochs"):
        assert column in header, "\n".join(screen)
    experiment = next(line for line in screen if "└──" in line)
    assert "0.003" in experiment and " 2 " in experiment, "\n".join(screen)
