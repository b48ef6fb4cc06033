"""requirements.lock against pyproject.toml, the README's quick start and CI.

The lock pins, with hashes, every package the pipeline and the tests install; the README's quick
start and .ci/run install from it (then the project itself with --no-deps). These tests read the
files only (no network, no resolver): every requirement in pyproject.toml (the base dependencies
and the ``pipeline`` and ``test`` extras) must be pinned in the lock at a version inside its
range, on every platform and Python the project supports, and every lock entry must be an exact
pin carrying sha256 hashes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass

import pytest
from packaging.markers import Marker, default_environment
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from helpers.project import PROJECT

LOCK = PROJECT / "requirements.lock"
EXTRAS = ("pipeline", "test")

# The one command that writes requirements.lock (uv writes it into the lock's header). One
# version per package for every Python (--fork-strategy fewest), so that a newer Python does not
# get another NumPy than the one dvc.lock was computed with.
REGENERATE = (
    "uv pip compile pyproject.toml --extra pipeline --extra test --universal --python-version 3.11"
    " --fork-strategy fewest --generate-hashes -o requirements.lock"
)
FIX = f"regenerate the lock (pip install uv) with: {REGENERATE}"

# The installs the quick start and CI may run: the lock, then the project without dependencies.
LOCK_INSTALL = re.compile(r"^pip install (-q )?-r requirements\.lock$")
PROJECT_INSTALL = re.compile(r"^pip install (-q )?--no-deps -e \.$")

# Where the lock must hold exactly one pin of each requirement: the platforms and Pythons served.
PLATFORMS = {
    "linux": {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"},
    "macos": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix"},
    "windows": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt"},
}
PYTHONS = ("3.11", "3.12", "3.13", "3.14")


@dataclass(frozen=True)
class Pin:
    """One entry of the lock: ``name==version ; marker`` and its hashes."""

    line: int  # where the entry starts, 1-based
    text: str  # the requirement as written, before the first option
    requirement: Requirement
    hashes: tuple[str, ...]  # the sha256 digests
    options: tuple[str, ...]  # any other option on the entry (none is allowed)

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> str | None:
        """The pinned version, or None unless the entry is one exact ``==`` pin."""
        specifiers = list(self.requirement.specifier)
        if self.requirement.url or len(specifiers) != 1:
            return None
        (only,) = specifiers
        if only.operator != "==" or "*" in only.version:
            return None
        return only.version

    @property
    def marker(self) -> str:
        return str(self.requirement.marker) if self.requirement.marker else ""


def parse_lock(text: str) -> tuple[list[str], list[Pin], list[str]]:
    """The lock's header comment lines, its entries, and the lines that are neither."""
    header: list[str] = []
    pins: list[Pin] = []
    other: list[str] = []
    logical: list[tuple[int, str]] = []  # continuation lines joined, comments dropped
    pending: tuple[int, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            if not logical and pending is None:
                header.append(stripped)
            continue
        if pending is not None:
            start, joined = pending
            pending = (start, f"{joined} {stripped.removesuffix(chr(92)).strip()}")
        elif stripped:
            pending = (number, stripped.removesuffix(chr(92)).strip())
        if pending is not None and not stripped.endswith("\\"):
            logical.append(pending)
            pending = None
    if pending is not None:
        logical.append(pending)

    for number, line in logical:
        if line.startswith("-"):  # an option line: an index, find-links, an editable ...
            other.append(f"line {number}: {line}")
            continue
        requirement_text, *option_texts = re.split(r"\s+(?=--?[a-z])", line)
        try:
            requirement = Requirement(requirement_text)
        except InvalidRequirement as error:
            other.append(f"line {number}: {line} ({error})")
            continue
        hashes = tuple(o.removeprefix("--hash=sha256:") for o in option_texts if o.startswith("--hash=sha256:"))
        options = tuple(o for o in option_texts if not o.startswith("--hash=sha256:"))
        pins.append(Pin(number, requirement_text, requirement, hashes, options))
    return header, pins, other


def pyproject_requirements(pyproject: dict) -> list[str]:
    """The base dependencies and the pipeline and test extras of a parsed pyproject.toml."""
    project = pyproject["project"]
    extras = project.get("optional-dependencies", {})
    missing = [extra for extra in EXTRAS if extra not in extras]
    assert not missing, f"pyproject.toml has no extra {missing}; the lock is made from {EXTRAS}"
    return [*project.get("dependencies", []), *(r for extra in EXTRAS for r in extras[extra])]


def environments() -> dict[str, dict[str, str]]:
    """Marker environments for every supported platform and Python."""
    found = {}
    for platform, values in PLATFORMS.items():
        for python in PYTHONS:
            environment = {**default_environment(), **values}
            environment.update(python_version=python, python_full_version=f"{python}.0",
                               implementation_name="cpython", platform_python_implementation="CPython",
                               extra="")
            found[f"{platform}, Python {python}"] = environment
    return found


def disagreements(requirements: list[str], pins: list[Pin]) -> list[str]:
    """What in ``requirements`` (pyproject.toml's) the lock does not pin, or pins out of range."""
    problems = []
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
    for text in requirements:
        wanted = Requirement(text)
        name = canonicalize_name(wanted.name)
        locked = by_name.get(name, [])
        if not locked:
            problems.append(f"{name}: pyproject.toml asks for {text!r}, requirements.lock does not pin "
                            f"it; {FIX}")
            continue
        for pin in locked:
            if pin.version is None or not wanted.specifier.contains(pin.version, prereleases=True):
                problems.append(f"{name}: requirements.lock pins {pin.text!r} (line {pin.line}), "
                                f"pyproject.toml asks for {text!r}; {FIX}")
        for where, environment in environments().items():
            if wanted.marker and not wanted.marker.evaluate(environment):
                continue
            applying = [p for p in locked if not p.requirement.marker or p.requirement.marker.evaluate(environment)]
            if len(applying) != 1:
                problems.append(f"{name}: requirements.lock has {len(applying)} pins of it for {where} "
                                f"(one is needed: pyproject.toml asks for {text!r}); {FIX}")
    return problems


def entry_problems(pins: list[Pin], other: list[str]) -> list[str]:
    """Entries that are not an exact pin with sha256 hashes from the package index, or pinned twice."""
    problems = [f"{line}: requirements.lock holds only pins with hashes (no index, find-links, "
                f"editable or other option lines); {FIX}" for line in other]
    seen: dict[tuple[str, str], Pin] = {}
    for pin in pins:
        if pin.version is None:
            problems.append(f"{pin.name}: {pin.text!r} (line {pin.line}) is not one exact == pin; {FIX}")
        if not pin.hashes or not all(re.fullmatch(r"[0-9a-f]{64}", h) for h in pin.hashes):
            problems.append(f"{pin.name}: {pin.text!r} (line {pin.line}) needs sha256 hashes "
                            f"(--hash=sha256:<64 hex digits>); {FIX}")
        if pin.options:
            problems.append(f"{pin.name}: {pin.text!r} (line {pin.line}) carries options other than "
                            f"hashes {pin.options}; {FIX}")
        key = (pin.name, pin.marker)
        if key in seen:
            problems.append(f"{pin.name}: pinned twice with the same marker {pin.marker!r} (lines "
                            f"{seen[key].line} and {pin.line}); {FIX}")
        seen.setdefault(key, pin)
    return problems


def quick_start_commands() -> list[str]:
    """The command lines (not comments) of the README's "Quick start" ```bash block."""
    readme = (PROJECT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Quick start\n(.*?)(?=^## )", readme, flags=re.M | re.S)
    assert section, "README.md has no '## Quick start' section"
    block = re.search(r"^```bash\n(.*?)^```", section.group(1), flags=re.M | re.S)
    assert block, "README.md's quick start has no ```bash block"
    return [line for line in block.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def install_problems(command: str, where: str) -> list[str]:
    """A command whose installs are not: the lock, then the project with --no-deps."""
    installs = [part.strip() for part in command.split("&&") if "pip install" in part]
    problems = [f"{where}: {part!r} installs something other than requirements.lock or the project "
                f"without dependencies ('pip install -r requirements.lock' then "
                f"'pip install --no-deps -e .')"
                for part in installs if not (LOCK_INSTALL.match(part) or PROJECT_INSTALL.match(part))]
    kinds = ["lock" if LOCK_INSTALL.match(part) else "project" for part in installs]
    if kinds != ["lock", "project"]:
        problems.append(f"{where}: {command!r} must run 'pip install -r requirements.lock' and then "
                        f"'pip install --no-deps -e .' (it installs: {kinds})")
    return problems


@pytest.fixture(scope="module")
def lock() -> tuple[list[str], list[Pin], list[str]]:
    assert LOCK.is_file(), f"requirements.lock is missing; {FIX}"
    return parse_lock(LOCK.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# the lock as it is
# ---------------------------------------------------------------------------------------------

def test_the_lock_pins_every_pyproject_requirement_in_range(lock, pyproject):
    _, pins, _ = lock
    problems = disagreements(pyproject_requirements(pyproject), pins)
    assert not problems, "requirements.lock and pyproject.toml disagree:\n" + "\n".join(problems)


def test_every_locked_entry_is_an_exact_pin_with_hashes(lock):
    _, pins, other = lock
    assert len(pins) > 20, f"requirements.lock holds {len(pins)} pins only; {FIX}"
    problems = entry_problems(pins, other)
    assert not problems, "requirements.lock:\n" + "\n".join(problems)


def test_the_header_names_the_regenerating_command(lock):
    header, _, _ = lock
    assert any(line.lstrip("# ").strip() == REGENERATE for line in header), (
        f"requirements.lock's header does not name the command that makes it; {FIX}\n"
        f"header: {header}")


def test_the_lock_is_for_the_oldest_python_pyproject_allows(pyproject):
    oldest = re.fullmatch(r">=\s*(\d+\.\d+)", pyproject["project"]["requires-python"].strip())
    assert oldest, "pyproject.toml's requires-python is not '>=X.Y'"
    assert f"--python-version {oldest.group(1)} " in REGENERATE, (
        f"pyproject.toml says requires-python >={oldest.group(1)}, the lock is made for another "
        f"Python; change --python-version in REGENERATE (tests/test_lock.py) and the README, then "
        f"regenerate the lock")
    assert oldest.group(1) == PYTHONS[0], "PYTHONS (tests/test_lock.py) starts at another Python"


def test_the_lock_holds_no_torch_and_the_packages_these_tests_need(lock):
    _, pins, _ = lock
    names = {pin.name for pin in pins}
    assert not names & {"torch", "torchvision"}, (
        f"requirements.lock pins torch, which numpynet does not use (a local pip constraint or "
        f"index leaked in?); {FIX}")
    assert "packaging" in names, f"requirements.lock lacks packaging, which tests/test_lock.py imports; {FIX}"


def test_the_readme_quick_start_installs_from_the_lock():
    commands = quick_start_commands()
    assert len(commands) == 2, f"the quick start should hold two commands (pipeline, tests): {commands}"
    pipeline, tests = commands
    assert pipeline.endswith("dvc repro --keep-going"), pipeline
    assert tests.endswith("&& pytest"), tests
    problems = install_problems(pipeline, "README quick start 1") + install_problems(tests, "README quick start 2")
    assert not problems, "\n".join(problems)


def test_ci_runs_the_readme_test_command_verbatim():
    ci = (PROJECT / ".ci" / "run").read_text(encoding="utf-8")
    last = [line for line in ci.splitlines() if line.strip()][-1]
    assert last == quick_start_commands()[1], (
        f".ci/run's last line must be the README's test command verbatim:\n  .ci/run: {last}\n"
        f"  README:  {quick_start_commands()[1]}")
    assert not install_problems(last, ".ci/run")


def test_the_readme_names_the_regenerating_command():
    readme = " ".join((PROJECT / "README.md").read_text(encoding="utf-8").split())
    assert REGENERATE in readme, f"README.md should tell how to regenerate the lock: {REGENERATE}"


# ---------------------------------------------------------------------------------------------
# the checks catch what they are for
# ---------------------------------------------------------------------------------------------

SAMPLE = f"""\
# This file was autogenerated by uv via the following command:
#    {REGENERATE}
numpy==2.4.6 \\
    --hash=sha256:{"a" * 64} \\
    --hash=sha256:{"b" * 64}
    # via numpynet (pyproject.toml)
pywin32==312 ; sys_platform == 'win32' \\
    --hash=sha256:{"c" * 64}
    # via numpynet (pyproject.toml)
"""


def test_the_parser_reads_pins_markers_and_hashes():
    header, pins, other = parse_lock(SAMPLE)
    assert header[1].lstrip("# ") == REGENERATE
    assert not other
    assert [(p.name, p.version, p.marker, len(p.hashes)) for p in pins] == [
        ("numpy", "2.4.6", "", 2), ("pywin32", "312", 'sys_platform == "win32"', 1)]
    assert not entry_problems(pins, other)
    assert not disagreements(["numpy>=2.4", "pywin32; sys_platform == 'win32'"], pins)


def test_a_requirement_the_lock_does_not_meet_is_reported():
    _, pins, _ = parse_lock(SAMPLE)
    (out_of_range,) = [p for p in disagreements(["numpy>=99"], pins) if "pins" in p]
    assert out_of_range.startswith("numpy:") and "numpy>=99" in out_of_range and REGENERATE in out_of_range
    (missing,) = disagreements(["Pillow>=10.3"], pins)
    assert missing.startswith("pillow:") and "does not pin" in missing
    # pinned for Windows only, but pyproject asks for it everywhere
    assert any("for linux, Python 3.11" in p for p in disagreements(["pywin32"], pins))


def test_entries_without_exact_pins_or_hashes_or_twice_are_reported():
    bad = SAMPLE + f"tqdm>=4.60\nnumpy==2.5.0 \\\n    --hash=sha256:{'d' * 64}\n--index-url https://example.org/simple\n"
    header, pins, other = parse_lock(bad)
    problems = entry_problems(pins, other)
    assert any(p.startswith("tqdm:") and "exact == pin" in p for p in problems)
    assert any(p.startswith("tqdm:") and "sha256" in p for p in problems)
    assert any(p.startswith("numpy:") and "twice" in p for p in problems)
    assert any("--index-url" in p for p in problems)
    # and two numpy pins for one platform disagree with pyproject
    assert any("2 pins" in p for p in disagreements(["numpy>=2.4"], pins))


def test_an_install_not_from_the_lock_is_reported():
    old = "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && pytest"
    assert install_problems(old, "README")
    new = ("python3 -m venv .venv && . .venv/bin/activate && pip install -q -r requirements.lock"
           " && pip install -q --no-deps -e . && pytest")
    assert not install_problems(new, "README")
