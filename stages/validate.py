"""validate stage: check params.yaml before any other stage runs.

Every download stage depends on this stage's output, so `dvc repro` and `dvc exp run` stop here,
before any command is run, when params.yaml has a problem: above all a dataset name that is not
safe to put into a command line or a path (DVC writes the names into the stages' shell commands).
Writes ``--out``, a marker whose content never changes, so a valid edit of params.yaml reruns
nothing downstream by itself.
"""

import _bootstrap  # noqa: I001  (first: this tree's code, on a pinned numeric backend)

from numpynet.config import load_params
from numpynet.files import write_text
from numpynet.stage_entry import run_stage, stage_arguments


def main() -> None:
    args = stage_arguments(__doc__, _bootstrap.PROJECT_ROOT, outputs=["out"], dataset=False)
    load_params(args.params)
    write_text(args.out, "params.yaml passed validation\n")


if __name__ == "__main__":
    run_stage(main)
