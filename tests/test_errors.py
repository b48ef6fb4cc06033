"""numpynet.errors: which machine problems become messages, and what those messages say."""

from __future__ import annotations

import subprocess
import sys

import pytest

# In a child whose file-size limit is 64 KiB, as `ulimit -f 64` sets it: write 1 MiB through the
# project's atomic writer and print the message the stage would print.
_WRITE_PAST_THE_LIMIT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))
from numpynet.errors import OutputError
from numpynet.files import write_text
try:
    write_text(sys.argv[1], "x" * (1 << 20))
except OutputError as error:
    print(error)
"""


@pytest.mark.hostile
def test_a_file_size_limit_is_named_as_the_cause_not_the_file_system(tmp_path):
    result = subprocess.run([sys.executable, "-c", _WRITE_PAST_THE_LIMIT, str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    message = result.stdout
    assert "file-size limit of 65,536 bytes" in message and "ulimit -f unlimited" in message
    assert "file system" not in message
    assert not (tmp_path / "out").exists()
