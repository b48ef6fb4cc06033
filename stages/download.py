"""download stage: fetch a dataset's files from its sources or a mirror and verify them.

Reads ``datasets.<name>.data`` and ``download`` from params.yaml and the NUMPYNET_MIRROR
environment variable (a URL or a directory tried before the official sources); writes the
verified files into ``--out`` (``data/raw/<name>``). Every file must arrive within
``download.deadline_s`` and its size cap; a relative local source is taken from the project root,
wherever the stage runs.
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

import os

from numpynet.config import load_params
from numpynet.data.fetch import acquire_dataset
from numpynet.data.fetch.mirrors import MIRROR_ENV, resolve_mirror
from numpynet.files import atomic_directory
from numpynet.stage_entry import run_stage, stage_arguments


def main() -> None:
    args = stage_arguments(__doc__, _bootstrap.PROJECT_ROOT, outputs=["out"])
    params = load_params(args.params)
    source = params.dataset(args.dataset).source
    mirror = resolve_mirror(os.environ.get(MIRROR_ENV))
    # A fresh directory renamed into place: a failed download leaves nothing behind.
    limits = params.download
    with atomic_directory(args.out) as out:
        acquire_dataset(
            source, out, mirror=mirror, timeout=limits.timeout_s, deadline=limits.deadline_s,
            max_bytes=limits.max_bytes, project_root=_bootstrap.PROJECT_ROOT,
        )


if __name__ == "__main__":
    run_stage(main)
