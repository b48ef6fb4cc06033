"""Running one stage script outside DVC, and what a refused input must look like.

Two runners, for two jobs (for a real ``dvc repro`` see :func:`helpers.project.make_dvc_project`):

* :func:`run_stage_process` runs ``python stages/<stage>.py ARGS`` in a child interpreter, in a
  copy of the project made by :func:`helpers.project.make_stage_project`: the exit code at the
  process boundary, and, on request, the child's peak resident memory.
* :func:`run_stage_in_process` runs the stage's ``main`` in this interpreter, as the stage script
  would (under :func:`numpynet.stage_entry.run_stage`, with ``sys.argv`` and the working directory
  set): fast enough for hypothesis, and reachable by monkeypatching (:func:`failing_writes
  <helpers.hostile_data.failing_writes>`, a ``MemoryError``). NumPy is loaded already:
  ``_bootstrap`` is replaced by a module that only names the project root.

:func:`assert_refused` is the one shape of a refusal: exit code 2, one paragraph starting with
``error:`` naming what it must, no traceback, and nothing written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import types
from pathlib import Path

from helpers.project import NAME, base_params, write_params
from numpynet.stage_entry import run_stage

TRAIN_ARGS = ["--data", f"data/processed/{NAME}", "--model", f"models/{NAME}",
              "--live", f"dvclive/{NAME}", "--checkpoint", f"checkpoints/{NAME}.npz"]
EVALUATE_ARGS = ["--data", f"data/processed/{NAME}", "--model", f"models/{NAME}",
                 "--live", f"dvclive/{NAME}", "--metrics", f"metrics/{NAME}.json",
                 "--plots", f"plots/{NAME}"]
# Each stage's arguments in a tiny project (helpers.project.tiny_project), as dvc.yaml gives them.
STAGE_ARGS = {
    "validate": ["--out", "data/params-valid"],
    "download": [NAME, "--out", f"data/raw/{NAME}"],
    "preprocess": [NAME, "--raw", f"data/raw/{NAME}", "--out", f"data/processed/{NAME}"],
    "train": [NAME, *TRAIN_ARGS],
    "evaluate": [NAME, *EVALUATE_ARGS],
}

# Runs the command it is given and prints, as its last line of output, the peak resident memory
# of that child (ru_maxrss of its children, in KiB on Linux).
_PEAK_RSS = (
    "import resource, subprocess, sys\n"
    "result = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(result.stderr)\n"
    "out = result.stdout\n"
    "sys.stdout.write(out if not out or out.endswith('\\n') else out + '\\n')\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    "sys.exit(result.returncode)\n"
)


def run_stage_process(
    project: Path, stage: str, *args: str, cwd: Path | None = None,
    env: dict[str, str] | None = None, timeout: float = 60, measure_peak: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``stages/<stage>.py`` of ``project`` with ``args`` in a child interpreter, from ``cwd``
    (``project``), with no ``NUMPYNET_*`` variable of this process and loopback unproxied.

    With ``measure_peak``, the result's ``peak_bytes`` is the child's peak resident memory.
    """
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("NUMPYNET_")
    }
    environment.update(no_proxy="127.0.0.1,localhost", NO_PROXY="127.0.0.1,localhost")
    environment.update(env or {})
    command = [sys.executable, str(project / "stages" / f"{stage}.py"), *args]
    if measure_peak:
        command = [sys.executable, "-c", _PEAK_RSS, *command]
    result = subprocess.run(command, cwd=cwd or project, env=environment, capture_output=True,
                            text=True, timeout=timeout)
    if measure_peak:
        result.stdout, _, peak = result.stdout.rstrip("\n").rpartition("\n")
        result.peak_bytes = int(peak) * 1024  # Linux reports KiB
    return result


def preprocess_image_folder(
    project: Path, name: str, source: Path, data: dict | None = None, **preprocess
) -> tuple[int, str, int, Path]:
    """Run preprocess as a process on dataset ``name``: an image folder read from ``source`` (a
    folder or an archive, linked into ``data/raw/<name>/`` as the download stage would have put
    it), with a params file of its own.

    ``data`` adds keys to its ``data:`` entry; ``preprocess`` overrides keys of that section.
    Returns the exit code, stderr, the peak resident memory in bytes, and the output folder.
    """
    raw = project / "data" / "raw" / name
    raw.mkdir(parents=True)
    (raw / source.name).symlink_to(source.resolve())
    params = base_params({name: {"data": {"format": "image-folder", "source": str(source),
                                          **(data or {})}, "train": {}}})
    params["preprocess"].update(preprocess)
    params_file = project / f"params-{name}.yaml"
    write_params(project, params)
    (project / "params.yaml").rename(params_file)
    out = project / "data" / "processed" / name
    result = run_stage_process(project, "preprocess", name, "--params", params_file.name,
                               "--raw", f"data/raw/{name}", "--out", f"data/processed/{name}",
                               timeout=120, measure_peak=True)
    return result.returncode, result.stderr, result.peak_bytes, out


def run_stage_in_process(project: Path, stage: str, *args: str) -> tuple[int, str]:
    """Run ``stage`` of ``project`` in this interpreter as DVC would, with ``args`` (by default
    :data:`STAGE_ARGS`, a tiny project's); return its exit code and stderr."""
    bootstrap = types.ModuleType("_bootstrap")
    bootstrap.PROJECT_ROOT = project
    script = project / "stages" / f"{stage}.py"
    spec = importlib.util.spec_from_file_location(f"_in_process_stage_{stage}", script)
    module = importlib.util.module_from_spec(spec)
    saved = {name: sys.modules.get(name) for name in ("_bootstrap", "_dvclive_log")}
    sys.modules["_bootstrap"] = bootstrap
    sys.modules.pop("_dvclive_log", None)
    sys.path.insert(0, str(project / "stages"))
    argv, cwd, stderr = sys.argv, os.getcwd(), io.StringIO()
    try:
        spec.loader.exec_module(module)
        sys.argv = [f"stages/{stage}.py", *(args or STAGE_ARGS[stage])]
        os.chdir(project)
        with contextlib.redirect_stderr(stderr):
            try:
                run_stage(module.main)
                code = 0
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = argv
        os.chdir(cwd)
        sys.path.remove(str(project / "stages"))
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
    return code, stderr.getvalue()


def assert_refused(code: int, stderr: str, *named: str, output: Path | None = None,
                   one_line: bool = False) -> str:
    """Exit code 2, an ``error:`` message of one paragraph naming each of ``named``, no
    traceback and never NumPy's ``allow_pickle`` advice; returns the message.

    ``output``: nothing was written there, nor beside it under any temporary name. ``one_line``:
    stderr holds the message alone, on one line (a stage that logged nothing before failing).
    """
    assert code == 2, f"exit code {code}:\n{stderr}"
    assert "Traceback" not in stderr, stderr
    assert "error: " in stderr, f"no 'error:' message:\n{stderr}"
    message = stderr[stderr.index("error: "):].strip()
    if one_line:
        assert stderr.startswith("error: ") and "\n" not in message, stderr
    assert "\n\n" not in message, f"more than one paragraph:\n{message}"
    assert "allow_pickle" not in message, message
    for name in named:
        assert name in message, f"{name!r} not named:\n{message}"
    if output is not None:
        assert not output.exists(), f"{output} was written although the stage failed"
        if output.parent.is_dir():  # nothing half-written either, under any temporary name
            leftovers = [p.name for p in output.parent.iterdir() if output.name in p.name]
            assert not leftovers, f"temporary files left beside {output}: {leftovers}"
    return message
