"""The real pipeline: `dvc repro` in a temporary git repository.

A tiny synthetic dataset in MNIST's official format is served over loopback through the mirror
setting, so the download, parse, train and evaluate code paths are the ones users run.
"""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from helpers.project import (
    PROJECT,
    base_params,
    dvc,
    dvc_environment,
    idx_dataset,
    make_built_dvc_project,
    make_dvc_project,
    private_copy,
    ran_stages,
    read_params,
    synthetic_mirror,
    tree_digest,
    write_params,
)

pytestmark = pytest.mark.slow

DATASET = "digits"
OTHER = "blobs"  # a second dataset, to show that the chains are independent
STAGE_NAMES = ("download", "preprocess", "train", "evaluate")
STAGES = [f"{stage}@{DATASET}" for stage in STAGE_NAMES]
PICTURES = ("learning_curves.png", "confusion_matrix.png", "per_class_errors.png",
            "misclassified.png")
CURVES = ("val_accuracy", "val_loss", "train_loss")


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    """Two synthetic datasets on a loopback HTTP server; yields (url, {name: sha256 by role}).

    One lies at the mirror's root, the other in a subfolder named after it: the two layouts a
    mirror may have.
    """
    root = tmp_path_factory.mktemp("www")
    with synthetic_mirror(root, {DATASET: 0, OTHER: 1}, at_root=DATASET) as served:
        yield served


@pytest.fixture(scope="module")
def environment(mirror):
    return dvc_environment(NUMPYNET_MIRROR=mirror[0])


@pytest.fixture(scope="module")
def built(tmp_path_factory, mirror, environment):
    """A clone of the project on the synthetic datasets, after one successful `dvc repro`."""
    repo = tmp_path_factory.mktemp("built") / "project"
    datasets = {name: idx_dataset(checksums) for name, checksums in mirror[1].items()}
    return repo, make_built_dvc_project(repo, base_params(datasets), environment)


@pytest.fixture
def project(built, tmp_path):
    return private_copy(built[0], tmp_path / "project")


def test_repro_runs_every_stage_and_writes_metrics(built):
    repo, first = built
    for stage in STAGES + [f"{stage}@{OTHER}" for stage in STAGE_NAMES]:
        assert f"Running stage '{stage}'" in first.stdout
    metrics = json.loads((repo / "metrics" / f"{DATASET}.json").read_text())
    assert metrics[DATASET]["accuracy"] > 0.5, "the synthetic classes are easy to separate"
    assert metrics[DATASET]["selected_epoch"] in (1, 2, 3)
    assert (repo / "models" / DATASET / "weights.npz").is_file()
    provenance = json.loads((repo / "models" / DATASET / "provenance.json").read_text())
    assert {"numeric_mode", "numpy", "blas"} <= set(provenance)
    live = repo / "dvclive" / DATASET
    summary = json.loads((live / "metrics.json").read_text())
    assert summary == {DATASET: {"epoch": 3, "val_accuracy": summary[DATASET]["val_accuracy"]},
                       "step": summary["step"]}
    assert 0 <= summary[DATASET]["val_accuracy"] <= 1
    val_accuracy = (live / "plots" / "metrics" / "val" / "accuracy.tsv").read_text().splitlines()
    assert val_accuracy[0] == "step\taccuracy" and len(val_accuracy) == 4
    lr = (live / "plots" / "metrics" / "lr.tsv").read_text().splitlines()
    assert lr[0] == "step\tlr" and len(lr) == 1 + int(val_accuracy[-1].split("\t")[0])
    for picture in PICTURES:
        with Image.open(repo / "plots" / DATASET / "pictures" / picture) as image:
            assert image.format == "PNG" and image.size[0] >= 400
    # The epoch curves: one row per epoch, the same values as the DVCLive log.
    curve = (repo / "plots" / DATASET / "curves" / "val_accuracy.csv").read_text().splitlines()
    assert curve[0] == "epoch,val_accuracy" and [row.split(",")[0] for row in curve[1:]] == [
        "1", "2", "3"]
    assert [float(row.split(",")[1]) for row in curve[1:]] == [
        float(row.split("\t")[1]) for row in val_accuracy[1:]]


def test_plots_show_renders_every_picture_and_curve_of_every_dataset(project, environment):
    """Both datasets join every plot, though dvc.yaml names neither; DVCLive's per-step log is
    no plot (its x, the optimizer step, does not line up runs of different batch sizes)."""
    shown = dvc("plots", "show", "--json", cwd=project, env=environment)
    rendered = json.loads(shown.stdout)["data"]
    dvc("plots", "show", "-o", "page", cwd=project, env=environment)
    page = (project / "page" / "index.html").read_text()
    for dataset in (DATASET, OTHER):
        for picture in PICTURES:
            (image,) = rendered[f"plots/{dataset}/pictures/{picture}"]
            assert image["type"] == "image"
            # The page shows its own copy of each PNG, beside it: no network needed.
            copy = f"static/workspace_plots_{dataset}_pictures_{picture}"
            assert f'src="{copy}"' in page and (project / "page" / copy).is_file()
        for curve in CURVES:
            (chart,) = rendered[f"plots/{dataset}/curves/{curve}.csv"]
            assert chart["type"] == "vega"
            assert chart["content"]["encoding"]["x"]["field"] == "epoch"
        assert not any(name.startswith("dvclive/") for name in rendered)


def test_exp_show_lists_the_live_training_metrics(project, environment):
    table = dvc("exp", "show", "--json", cwd=project, env=environment)
    workspace = json.loads(table.stdout)[0]
    metrics = workspace["data"]["metrics"]
    live = metrics[f"dvclive/{DATASET}/metrics.json"]["data"]
    assert live[DATASET]["epoch"] == 3 and "val_accuracy" in live[DATASET]


def test_second_repro_is_a_noop_and_status_is_clean(project, environment):
    again = dvc("repro", cwd=project, env=environment)
    assert "Running stage" not in again.stdout
    status = dvc("status", cwd=project, env=environment)
    assert "up to date" in status.stdout


def test_python_bytecode_caches_are_no_code_dependency(project, environment):
    """The stages ran with bytecode writing on, as on most machines: __pycache__/ folders now
    lie in src/ and stages/. A fresh clone has none, and another Python writes others; neither
    may change a stage's code dependency (.dvcignore), or every clone would retrain."""
    caches = [path for path in project.rglob("__pycache__") if ".venv" not in path.parts]
    assert any("src" in path.parts for path in caches), "the stages wrote no bytecode"
    for path in caches:
        shutil.rmtree(path)
    assert "up to date" in dvc("status", cwd=project, env=environment).stdout
    (project / "src" / "numpynet" / "nn" / "__pycache__").mkdir()
    (project / "src" / "numpynet" / "nn" / "__pycache__" / "layers.cpython-399.pyc").write_bytes(
        b"another Python")
    assert "up to date" in dvc("status", cwd=project, env=environment).stdout


def test_params_change_reruns_only_downstream_stages(project, environment):
    params = read_params(project)
    params["train"]["lr"] = 0.003
    write_params(project, params)
    rerun = dvc("repro", cwd=project, env=environment)
    ran = ran_stages(rerun.stdout)
    assert {f"train@{DATASET}", f"evaluate@{DATASET}"} <= ran
    assert not {stage for stage in ran if stage.startswith(("download@", "preprocess@"))}
    params_diff = dvc("params", "diff", cwd=project, env=environment)
    assert "train.lr" in params_diff.stdout and "0.003" in params_diff.stdout
    metrics_diff = dvc("metrics", "diff", "--json", cwd=project, env=environment)
    changed = json.loads(metrics_diff.stdout)[f"metrics/{DATASET}.json"]
    assert f"{DATASET}.loss" in changed and changed[f"{DATASET}.loss"]["diff"] != 0


def test_dataset_override_reruns_only_that_dataset(project, environment):
    params = read_params(project)
    params["datasets"][OTHER]["train"] = {"lr": 0.003, "hidden_sizes": [16]}
    write_params(project, params)
    rerun = dvc("repro", cwd=project, env=environment)
    ran = ran_stages(rerun.stdout)
    assert ran == {"validate", f"train@{OTHER}", f"evaluate@{OTHER}"}
    architecture = json.loads((project / "models" / OTHER / "architecture.json").read_text())
    assert architecture["hidden_sizes"] == [16]
    metrics_diff = json.loads(dvc("metrics", "diff", "--json", cwd=project, env=environment).stdout)
    # Only this dataset's files may move (its live summary may end on the same numbers).
    assert f"metrics/{OTHER}.json" in metrics_diff
    assert set(metrics_diff) <= {f"metrics/{OTHER}.json", f"dvclive/{OTHER}/metrics.json"}


def test_shared_train_setting_reruns_every_dataset(project, environment):
    params = read_params(project)
    params["train"]["epochs"] = 2
    write_params(project, params)
    rerun = dvc("repro", cwd=project, env=environment)
    ran = ran_stages(rerun.stdout)
    assert ran == {"validate"} | {
        f"{stage}@{name}" for stage in ("train", "evaluate") for name in (DATASET, OTHER)
    }


def test_unreachable_dataset_fails_alone(project, environment):
    params = read_params(project)
    missing = {role: "0" * 64 for role in params["datasets"][DATASET]["data"]["sha256"]}
    params["datasets"]["missing"] = {"data": {"format": "idx", "sha256": missing, "urls": []}, "train": {}}
    params["datasets"][OTHER]["train"] = {"epochs": 1}  # work for another chain
    write_params(project, params)
    result = dvc("repro", "--keep-going", cwd=project, env=environment, check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "download@missing" in output and "NUMPYNET_MIRROR" in output
    assert f"Running stage 'evaluate@{OTHER}'" in result.stdout, "the other chains carry on"
    assert not (project / "data" / "raw" / "missing").exists()
    assert not list((project / "data" / "raw").glob(".*")), "no temporary files are left"


def test_push_then_pull_restores_data_and_model_byte_for_byte(project, environment, tmp_path):
    dvc("remote", "add", "-d", "storage", str(tmp_path / "remote"), cwd=project, env=environment)
    dvc("push", cwd=project, env=environment)
    before = tree_digest(project / "data", project / "models")
    shutil.rmtree(project / "data")
    shutil.rmtree(project / "models")
    shutil.rmtree(project / ".dvc" / "cache")
    offline = {**environment, "NUMPYNET_MIRROR": "http://127.0.0.1:9/unreachable"}
    dvc("pull", cwd=project, env=offline)
    assert tree_digest(project / "data", project / "models") == before
    assert "up to date" in dvc("status", cwd=project, env=offline).stdout


def test_unreachable_sources_fail_clearly_and_leave_nothing(project, environment):
    shutil.rmtree(project / "data")
    offline = {**environment}
    del offline["NUMPYNET_MIRROR"]
    failed = dvc("repro", "--force", f"download@{DATASET}", cwd=project, env=offline, check=False)
    assert failed.returncode != 0
    assert "NUMPYNET_MIRROR" in failed.stderr + failed.stdout
    assert not (project / "data" / "raw" / DATASET).exists()
    leftovers = list((project / "data" / "raw").glob(".*")) if (project / "data" / "raw").exists() else []
    assert leftovers == []


def test_invalid_params_stop_the_pipeline_before_any_work(project, environment):
    params = read_params(project)
    params["train"]["dropout"] = 1.5
    write_params(project, params)
    failed = dvc("repro", cwd=project, env=environment, check=False)
    assert failed.returncode != 0
    assert "train.dropout" in failed.stderr + failed.stdout
    assert "Traceback" not in failed.stderr + failed.stdout


REAL_MNIST = PROJECT.parent / "shared" / "datasets" / "mnist"


@pytest.mark.skipif(not REAL_MNIST.is_dir(), reason=f"real-MNIST mirror not found at {REAL_MNIST}")
def test_real_mnist_through_dvc_and_the_mirror_setting(tmp_path, environment):
    """The built-in MNIST entry, official URLs and all, on real data with a short schedule."""
    # The shipped recipe's ingredients (no flips: digits) on a small network for 3 epochs, but
    # rotations and zooms: their floor on real digits is in tests/training/test_recipe.py.
    params = base_params({"mnist": {"data": {"format": "idx"}, "train": {}}},
                         hidden_sizes=[256], dropout=0.0, epochs=3, batch_size=128,
                         normalization="batch", label_smoothing=0.1, augment_shift=2,
                         select_by="val_accuracy")
    repo = make_dvc_project(tmp_path / "project", params, environment)
    # The mirror is tried first, so the official URLs are never contacted.
    dvc("repro", cwd=repo, env={**environment, "NUMPYNET_MIRROR": str(REAL_MNIST)})
    metrics = json.loads((repo / "metrics" / "mnist.json").read_text())
    assert metrics["mnist"]["accuracy"] >= 0.965  # 96.99% in the avx2 class
    assert 1 <= metrics["mnist"]["selected_epoch"] <= 3


CIFAR_JPEG = PROJECT.parent / "shared" / "datasets" / "cifar10-jpeg.tar.gz"
CIFAR_JPEG_SHA256 = "67544cf5786884d3142edbad0e3888b5c4b10b3d1b3c97e3b96a74238c41c209"


@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"CIFAR-10 JPEG archive not found at {CIFAR_JPEG}")
def test_real_image_folder_through_dvc(tmp_path, environment):
    """A user's image folder added with a few lines of params: CIFAR-10 as JPEGs, short schedule."""
    datasets = {
        "cifar10-jpeg": {
            "data": {"format": "image-folder", "source": str(CIFAR_JPEG), "sha256": CIFAR_JPEG_SHA256},
            # CIFAR-10's recipe (flips, whitening, test-time flip) on a small, short schedule.
            "train": {"hidden_sizes": [256], "dropout": 0.0, "epochs": 2, "batch_size": 128,
                      "augment_flip": True, "whitening": "zca"},
        }
    }
    params = base_params(datasets, normalization="batch", label_smoothing=0.1, augment_shift=2,
                         select_by="val_accuracy")
    params["evaluate"]["test_time_flip"] = True
    repo = make_dvc_project(tmp_path / "project", params, environment)
    dvc("repro", cwd=repo, env=environment)
    meta = json.loads((repo / "data" / "processed" / "cifar10-jpeg" / "meta.json").read_text())
    assert meta["image_shape"] == [32, 32, 3] and meta["sizes"]["test"] == 10000
    assert meta["classes"][:2] == ["airplane", "automobile"]
    metrics = json.loads((repo / "metrics" / "cifar10-jpeg.json").read_text())
    assert metrics["cifar10-jpeg"]["accuracy"] >= 0.40, "ten classes: chance is 0.10"
