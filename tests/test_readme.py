"""The README's command blocks, run as written in a temporary copy of the project.

Every ```bash block under the sections listed in OFFLINE_SECTIONS runs line by line in `bash -e`,
in a project whose `mnist` is a tiny synthetic dataset served over loopback. The only edit is the
example remote folder, moved under the test's temporary folder. Blocks elsewhere need the network
(the quick start's install, which CI runs verbatim) or the real datasets (the mirror examples, the
benchmark; the real-data tests run those paths).
"""

from __future__ import annotations

import re
import subprocess

import pytest

from helpers.project import (
    PROJECT,
    base_params,
    dvc,
    dvc_environment,
    git,
    idx_dataset,
    make_project,
    synthetic_mirror,
)

pytestmark = pytest.mark.slow

OFFLINE_SECTIONS = ("Experiments", "Sharing data and models (remotes)")
EXAMPLE_REMOTE = "/mnt/shared/numpynet-cache"


def readme_blocks() -> dict[str, list[str]]:
    """The ```bash blocks of each ``## `` section of the README, in order."""
    blocks: dict[str, list[str]] = {}
    for section in re.split(r"^## ", (PROJECT / "README.md").read_text(encoding="utf-8"), flags=re.M)[1:]:
        title = section.splitlines()[0].strip()
        blocks[title] = re.findall(r"^```bash\n(.*?)^```", section, flags=re.M | re.S)
    return blocks


def run_block(block: str, cwd, env) -> None:
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"


def test_the_offline_sections_have_commands():
    blocks = readme_blocks()
    for title in OFFLINE_SECTIONS:
        assert blocks.get(title), f"README section {title!r} has no bash block"


def test_offline_readme_commands_run_as_written(tmp_path):
    remote = tmp_path / "remote"
    with synthetic_mirror(tmp_path / "www", {"mnist": 0}) as (url, pins):
        env = dvc_environment(NUMPYNET_MIRROR=url)
        params = base_params({"mnist": idx_dataset(pins["mnist"])})
        repo = make_project(tmp_path / "project", params, env)
        dvc("repro", cwd=repo, env=env)
        git("add", "-A", cwd=repo, env=env)
        git("commit", "-qm", "first run", cwd=repo, env=env)  # `dvc plots diff HEAD~1` needs one

        blocks = readme_blocks()
        for block in blocks["Experiments"]:
            run_block(block, repo, env)
        sharing = [block.replace(EXAMPLE_REMOTE, str(remote)) for block in
                   blocks["Sharing data and models (remotes)"]]
        local_remote, ssh_remote, other_clone = sharing
        # Back to the committed state: what is pushed is what a clone checks out.
        git("checkout", "--", ".", cwd=repo, env=env)
        dvc("checkout", cwd=repo, env=env)
        run_block(local_remote, repo, env)
        ssh_repo = tmp_path / "ssh-clone"
        git("clone", "-q", str(repo), str(ssh_repo), cwd=tmp_path, env=env)
        dvc("remote", "remove", "storage", cwd=ssh_repo, env=env)
        run_block(ssh_remote, ssh_repo, env)

    clone = tmp_path / "clone"
    offline = {**env, "NUMPYNET_MIRROR": "http://127.0.0.1:9/unreachable"}
    git("clone", "-q", str(repo), str(clone), cwd=tmp_path, env=offline)
    run_block(other_clone, clone, offline)
    assert "up to date" in dvc("status", cwd=clone, env=offline).stdout
