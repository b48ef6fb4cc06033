"""The pages `dvc plots show` and `dvc plots diff` write, looked at in headless Chromium offline.

A tiny synthetic dataset runs through the real pipeline, is committed, and runs again as an
experiment with twice the batch size (so half the optimizer steps an epoch): the comparison the
charts are for. Chromium opens each page with every host name unresolvable and reports what the
DOM holds (tests/helpers/browser.py): a chart that needs the CDN stays empty there.
"""

from __future__ import annotations

import shutil

import pytest
from dvc_render.html import PAGE_HTML

from helpers.browser import chart_ids, look_at, require_chromium
from helpers.project import (
    base_params,
    dvc,
    dvc_environment,
    git,
    idx_dataset,
    make_dvc_project,
    synthetic_mirror,
)
from numpynet.pictures import EPOCH_CURVES

pytestmark = pytest.mark.slow

DATASET = "digits"
EXPERIMENT = "double-batch"
CURVE_CHARTS = {f"plots_{DATASET}_curves_{name}_csv": name for name in EPOCH_CURVES}
TITLES = {
    "val_accuracy": f"{DATASET}: validation accuracy, end of each epoch",
    "val_loss": f"{DATASET}: validation loss (cross-entropy), end of each epoch",
    "train_loss": f"{DATASET}: training loss, mean over each epoch (smoothed targets)",
}
PICTURES = ("confusion_matrix.png", "learning_curves.png", "misclassified.png",
            "per_class_errors.png")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The project after a committed run and an experiment with batch size 64 (workspace)."""
    require_chromium()  # before minutes of pipeline
    root = tmp_path_factory.mktemp("plots")
    with synthetic_mirror(root / "www", {DATASET: 0}) as (url, pins):
        environment = dvc_environment(NUMPYNET_MIRROR=url)
        params = base_params({DATASET: idx_dataset(pins[DATASET])}, epochs=4)
        repo = make_dvc_project(root / "project", params, environment)
        dvc("repro", cwd=repo, env=environment)
        git("add", "-A", cwd=repo, env=environment)
        git("commit", "-qm", "first run", cwd=repo, env=environment)
        dvc("exp", "run", "-n", EXPERIMENT, "-S", "train.batch_size=64", cwd=repo,
            env=environment)
    return repo, environment


def _page(repo, environment, *command: str):
    out = repo / f"page-{command[0]}"
    shutil.rmtree(out, ignore_errors=True)
    dvc("plots", *command, "-o", str(out), cwd=repo, env=environment)
    return out / "index.html"


def _assert_offline_and_within_the_window(report):
    assert all(address.startswith("file:") for address in report.resources), report.resources
    # The pictures' own widths are checked in tests/pictures (the page would scale a wider one
    # down); here, that the page with them side by side does not scroll sideways.
    assert report.page_width <= report.window_width, "the page scrolls sideways"
    assert report.pictures, "no picture on the page"
    for picture in report.pictures:
        assert picture["loaded"], f"{picture['src']} did not load"
        assert picture["right"] <= report.window_width, f"{picture['src']} overflows the page"
        assert picture["width"] == picture["natural_width"], f"{picture['src']} was scaled"


def test_plots_show_draws_every_chart_and_picture_offline(repo, tmp_path):
    page = _page(*repo, "show")
    report = look_at(page, tmp_path / "profile")
    ids = chart_ids(page)
    assert set(CURVE_CHARTS) <= set(ids)
    for chart_id in ids:
        chart = report.charts[chart_id]
        assert chart.embedded and chart.lines >= 1, f"{chart_id} drew nothing: {chart}"
    for chart_id, name in CURVE_CHARTS.items():
        chart = report.charts[chart_id]
        assert chart.title == [TITLES[name]]
        assert "epoch" in chart.axis_titles
    _assert_offline_and_within_the_window(report)
    for name in PICTURES:
        assert sum(picture["src"].endswith(f"_pictures_{name}") for picture in report.pictures) == 1


def test_plots_diff_draws_both_runs_in_each_chart_told_apart_by_a_legend(repo, tmp_path):
    page = _page(*repo, "diff", "HEAD", EXPERIMENT)
    report = look_at(page, tmp_path / "profile")
    for chart_id, name in CURVE_CHARTS.items():
        chart = report.charts[chart_id]
        assert chart.lines == 2, f"{chart_id}: {chart.lines} lines, expected one per run"
        assert sorted(chart.legend) == sorted(["HEAD", EXPERIMENT]), chart.legend
        assert chart.title == [TITLES[name]] and "epoch" in chart.axis_titles
    # Each picture twice, side by side or wrapped under each other: one per revision.
    assert len(report.pictures) == 2 * len(PICTURES)
    _assert_offline_and_within_the_window(report)


def test_plots_diff_against_the_previous_commit(repo, tmp_path):
    """What the README promises in the main workspace: `dvc plots diff HEAD~1`, here with the
    experiment's results in the workspace and no results in HEAD~1 (the project before its first
    run): every chart draws the workspace's line, and nothing needs the network."""
    page = _page(*repo, "diff", "HEAD~1")
    report = look_at(page, tmp_path / "profile")
    for chart_id in CURVE_CHARTS:
        chart = report.charts[chart_id]
        assert chart.lines == 1 and chart.legend == ["workspace"], chart
    _assert_offline_and_within_the_window(report)


def test_a_plot_no_revision_has_says_so_instead_of_an_empty_frame(repo, tmp_path):
    """A dataset in params.yaml whose stages have not run (as Fashion-MNIST in a workspace
    without its mirror): DVC writes an empty spec for each of its plots."""
    project, environment = repo
    params = (project / "params.yaml").read_text(encoding="utf-8")
    page_dir = tmp_path / "page"
    try:
        (project / "params.yaml").write_text(
            params.replace(f"  {DATASET}:\n", f"  unrun:\n    data: {{format: idx, urls: []}}\n"
                                              f"  {DATASET}:\n", 1), encoding="utf-8")
        dvc("plots", "show", "-o", str(page_dir), cwd=project, env=environment)
    finally:
        (project / "params.yaml").write_text(params, encoding="utf-8")
    report = look_at(page_dir / "index.html", tmp_path / "profile")
    chart = report.charts["plots_unrun_curves_val_accuracy_csv"]
    assert chart.no_data and "no revision shown has data for this plot" in chart.text
    assert chart.marks == 0
    assert report.charts[next(iter(CURVE_CHARTS))].lines == 1


def test_the_probe_sees_dvc_default_page_draw_nothing_offline(repo, tmp_path):
    """The check can fail: DVC's own page loads Vega from a CDN, which is unreachable here."""
    project, environment = repo
    default = tmp_path / "default.html"
    default.write_text(PAGE_HTML, encoding="utf-8")
    out = tmp_path / "page"
    dvc("plots", "show", "--html-template", str(default), "-o", str(out), cwd=project,
        env=environment)
    report = look_at(out / "index.html", tmp_path / "profile")
    for chart_id in CURVE_CHARTS:
        assert report.charts[chart_id].marks == 0 and not report.charts[chart_id].embedded
    assert any("cdn.jsdelivr.net" in address for address in report.resources)
