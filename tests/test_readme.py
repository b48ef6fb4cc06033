"""The documentation's command blocks, run as written, and its links, followed.

Command blocks: the ```bash blocks of README.md and of every docs/*.md file are collected by
``## `` section, each section named by its file and title, e.g. ("README.md", "Experiments"), so a
section that moves to docs/ is still found (under its new file). The blocks of the sections in
OFFLINE_SECTIONS run line by line in `bash -e`, in a temporary copy of the project whose `mnist`
is a tiny synthetic dataset served over loopback (slow). The only edit is the example remote
folder, moved under the test's temporary folder. Every other section with a ```bash block is
listed in NOT_RUN with the reason: it needs the network (the quick start's install, which CI runs
verbatim) or the real datasets (the mirror examples, the benchmarks; the real-data tests run those
paths). A fast test fails when a section with commands is in neither list, or when a listed
section is gone (naming the file it moved to), so no command block goes unaccounted for.

Links (fast): every relative link of README.md, CONTRIBUTING.md and docs/*.md (``[text](path)``
or ``[text](path#anchor)``, images too) points at a file or folder that exists, and an #anchor
into a Markdown file names one of its headings, by GitHub's rules (lowercase, spaces to '-',
punctuation other than '-' and '_' dropped, a repeated heading's anchor numbered). The README
links every docs/ page.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from helpers.project import (
    PROJECT,
    base_params,
    dvc,
    dvc_environment,
    git,
    idx_dataset,
    make_dvc_project,
    synthetic_mirror,
)

# The sections whose ```bash blocks run offline, as written: (file, ``## `` title).
OFFLINE_SECTIONS = (
    ("README.md", "Experiments"),
    ("README.md", "Sharing data and models (remotes)"),
)
EXPERIMENTS, SHARING = OFFLINE_SECTIONS
# The other sections with ```bash blocks, and why those do not run here.
NOT_RUN = {
    ("README.md", "Quick start"): "installs from the network; CI (.ci/run) runs its test command verbatim",
    ("README.md", "Using a mirror"): "needs the real datasets (tests/test_real_mnist.py reads that mirror)",
    ("docs/speed.md", "One epoch against PyTorch"): "installs PyTorch and runs for about 40 minutes",
    ("docs/speed.md", "Stage times"): "needs the real datasets",
    ("README.md", "Plots: comparing runs"): (
        "an experiment's name differs every run; tests/stages/test_plots_in_browser.py runs "
        "`dvc plots show`, `dvc plots diff HEAD~1` and a diff of a commit and an experiment, "
        "and opens their pages"),
}
EXAMPLE_REMOTE = "/mnt/shared/numpynet-cache"

FENCE = re.compile(r"^\s*(```|~~~)")
# [text](target) and ![alt](target), with an optional "title"; the target without spaces.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def command_documents() -> list[Path]:
    """The files whose ```bash blocks are collected: the README, then docs/*.md."""
    return [PROJECT / "README.md", *sorted((PROJECT / "docs").glob("*.md"))]


def linked_documents() -> list[Path]:
    """The files whose links are followed: the README, CONTRIBUTING.md and docs/*.md."""
    return [PROJECT / "README.md", PROJECT / "CONTRIBUTING.md", *sorted((PROJECT / "docs").glob("*.md"))]


def name(path: Path) -> str:
    """``path`` as the sections are keyed: relative to the project, with '/'."""
    return path.relative_to(PROJECT).as_posix()


def sections(path: Path) -> dict[str, str]:
    """The text of each ``## `` section of a Markdown file, by title, in order. A line starting
    with ``## `` inside a fenced block (a shell comment, say) starts no section."""
    found: dict[str, list[str]] = {}
    current = None
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced and line.startswith("## "):
            current = found.setdefault(line[3:].strip(), [])
            continue
        if current is not None:
            current.append(line)
    return {title: "".join(lines) for title, lines in found.items()}


def command_blocks() -> dict[tuple[str, str], list[str]]:
    """The ```bash blocks of each ``## `` section of the README and docs/*.md, in order, keyed by
    (file, title)."""
    return {(name(path), title): re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S)
            for path in command_documents() for title, text in sections(path).items()}


def where_now(key: tuple[str, str], blocks: dict) -> str:
    """Where a section of ``key``'s title lives now, for the message when it is not at ``key``."""
    elsewhere = [file for file, title in blocks if title == key[1] and file != key[0]]
    return f" (a section of that title is in {', '.join(elsewhere)}: rename it here)" if elsewhere else ""


def run_block(block: str, cwd, env) -> None:
    for line in block.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        result = subprocess.run(
            ["bash", "-e", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, f"{line}\n{result.stdout}\n{result.stderr}"


def test_the_offline_sections_have_commands():
    blocks = command_blocks()
    for key in OFFLINE_SECTIONS:
        assert blocks.get(key), f"section {key[1]!r} of {key[0]} has no bash block{where_now(key, blocks)}"


def test_every_command_block_is_run_or_said_why_not():
    blocks = command_blocks()
    unaccounted = [key for key, found in blocks.items()
                   if found and key not in OFFLINE_SECTIONS and key not in NOT_RUN]
    assert not unaccounted, (
        f"sections with ```bash blocks that no test runs: {unaccounted}; add each to "
        f"OFFLINE_SECTIONS (if it runs offline) or to NOT_RUN with the reason")
    stale = [f"{key}{where_now(key, blocks)}" for key in NOT_RUN if not blocks.get(key)]
    assert not stale, f"NOT_RUN names sections without a bash block: {stale}"


@pytest.mark.slow
def test_offline_readme_commands_run_as_written(tmp_path):
    remote = tmp_path / "remote"
    with synthetic_mirror(tmp_path / "www", {"mnist": 0}) as (url, pins):
        env = dvc_environment(NUMPYNET_MIRROR=url)
        params = base_params({"mnist": idx_dataset(pins["mnist"])})
        repo = make_dvc_project(tmp_path / "project", params, env)
        dvc("repro", cwd=repo, env=env)
        git("add", "-A", cwd=repo, env=env)
        git("commit", "-qm", "first run", cwd=repo, env=env)  # `dvc plots diff HEAD~1` needs one

        blocks = command_blocks()
        for block in blocks[EXPERIMENTS]:
            run_block(block, repo, env)
        sharing = [block.replace(EXAMPLE_REMOTE, str(remote)) for block in blocks[SHARING]]
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


# ---------------------------------------------------------------------------------------------
# links
# ---------------------------------------------------------------------------------------------

def prose(text: str) -> str:
    """``text`` with its fenced blocks emptied, line for line (so line numbers still hold)."""
    kept, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            line = ""
        kept.append("" if fenced else line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text as shown (links to their text, no code or emphasis
    marks), lowercase, punctuation other than '-' and '_' dropped, each space a '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"[`*]", "", text).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; a repeated one gets -1, -2 … as on GitHub."""
    found: set[str] = set()
    for line in prose(path.read_text(encoding="utf-8")).splitlines():
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            anchor, count = base, 0
            while anchor in found:
                count += 1
                anchor = f"{base}-{count}"
            found.add(anchor)
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link in ``path`` that is not a URL, outside code."""
    # A code span (it may run over a line break) may hold brackets and parentheses that are no
    # link: emptied, its line breaks kept.
    text = re.sub(r"`[^`]*`", lambda span: "\n" * span.group().count("\n"),
                  prose(path.read_text(encoding="utf-8")))
    return [(text.count("\n", 0, link.start()) + 1, link.group(1)) for link in LINK.finditer(text)
            if not URL_SCHEME.match(link.group(1))]


def broken_links(path: Path) -> list[str]:
    problems = []
    for number, target in relative_links(path):
        file_part, _, anchor = unquote(target).partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{name(path)}:{number}: {target}"
        if not linked.exists():
            problems.append(f"{where}: no such file {linked}")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: {name(linked)} has no heading with the anchor #{anchor}")
    return problems


def test_every_relative_link_and_anchor_of_the_docs_exists():
    documents = linked_documents()
    missing = [name(path) for path in documents if not path.is_file()]
    assert not missing, f"missing documents: {missing}"
    assert any(relative_links(path) for path in documents), "found no link at all: is LINK broken?"
    problems = [problem for path in documents for problem in broken_links(path)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_links_every_docs_page():
    readme = PROJECT / "README.md"
    linked = {(readme.parent / target.partition("#")[0]).resolve() for _, target in relative_links(readme)}
    unlinked = [name(page) for page in sorted((PROJECT / "docs").glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link (add them to 'Further reading'): {unlinked}"


@pytest.mark.parametrize("heading, anchor", [
    ("Sharing data and models (remotes)", "sharing-data-and-models-remotes"),
    ("Accuracy: one recipe, and what each part adds", "accuracy-one-recipe-and-what-each-part-adds"),
    ("Where an epoch's time went", "where-an-epochs-time-went"),
    ("The `numpynet` command, max_bytes", "the-numpynet-command-max_bytes"),
    ("See [the lock](x.md) → here", "see-the-lock--here"),
])
def test_anchors_follow_githubs_rules(heading, anchor):
    assert slug(heading) == anchor


def test_the_link_check_finds_broken_links(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "PROJECT", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Two words\n\n## Two words\n", encoding="utf-8")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/a.md#two-words) [ok](docs/a.md#two-words-1) [ok](#top) [url](https://x.org/y)\n"
        "`[code](nowhere.md)` `a span over\na line break [code](nowhere.md)`\n"
        "```\n[fenced](nowhere.md)\n```\n\n# Top\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#three-words) ![img](missing.png)\n",
        encoding="utf-8")
    problems = broken_links(page)
    assert [problem.split(": ")[1] for problem in problems] == [
        "docs/b.md", "docs/a.md#three-words", "missing.png"], problems
