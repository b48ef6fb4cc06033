"""The validate stage, run as a process, refuses sizes that cannot fit in memory (the rules
themselves: tests/config/test_rules.py)."""

from __future__ import annotations

import pytest

from helpers.project import make_stage_project, pets_params, write_params
from helpers.stages import run_stage_process


@pytest.mark.hostile
def test_the_validate_stage_refuses_it_too(tmp_path):
    project = make_stage_project(tmp_path / "project")
    write_params(project, pets_params([1024, 1024]))
    result = run_stage_process(project, "validate", "--out", "data/params-valid")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "datasets.pets.data.size" in result.stderr and "need about 70.3 GiB" in result.stderr
    assert not (project / "data" / "params-valid").exists()
