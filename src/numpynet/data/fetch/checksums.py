"""Which bytes count as genuine: a file is accepted when one of its pinned digests matches.

``sha256`` pins the content as stored (decompressed, for a ``.gz`` that is decompressed): any
honest mirror passes, re-compressed or not. ``md5`` pins the bytes as served, which only the
publisher's own archive matches. Download decides where bytes come from; this module alone
decides what is kept, so it is a dependency of the download stage.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from numpynet.data.catalog import RemoteFile

_CHUNK_BYTES = 1 << 16


def _digests_of_file(path: Path, algorithms: Sequence[str]) -> dict[str, str]:
    """Return the hex digests of the file at ``path`` for each of ``algorithms``, in one read."""
    digests = {name: hashlib.new(name, usedforsecurity=False) for name in algorithms}
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_CHUNK_BYTES), b""):
            for digest in digests.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in digests.items()}


def sha256_of_file(path: Path) -> str:
    """Return the hex sha256 of the file at ``path``, read in chunks."""
    return _digests_of_file(path, ["sha256"])["sha256"]


def checksum_failure(remote: RemoteFile, *, served_md5: str, content_sha256: str) -> str | None:
    """Say why a download does not prove ``remote`` genuine, or return None when it does.

    ``served_md5`` is of the bytes as served, ``content_sha256`` of the content as stored. Any one
    pinned digest matching is enough (see the module docstring).
    """
    if remote.sha256 is not None and content_sha256 == remote.sha256:
        return None
    if remote.md5 is not None and served_md5 == remote.md5:
        return None
    mismatches = []
    if remote.sha256 is not None:
        mismatches.append(f"content sha256 {content_sha256} ≠ pinned {remote.sha256}")
    if remote.md5 is not None:
        mismatches.append(f"served md5 {served_md5} ≠ pinned {remote.md5}")
    reason = "checksum mismatch: " + " and ".join(mismatches)
    if remote.sha256 is None:
        # Without a content pin a re-compressing mirror is indistinguishable from a corrupt one.
        reason += "; only the publisher's original archive can be verified for this file"
    return reason


def stored_file_is_verified(remote: RemoteFile, path: Path) -> bool | None:
    """Check a file already stored for ``remote`` against its pins.

    Returns True or False when a pin applies to the stored bytes, None when none does: a
    decompressed file pinned only by the md5 of its compressed form cannot be checked.
    """
    comparable = {"sha256": remote.sha256}
    if not remote.decompress:
        comparable["md5"] = remote.md5  # stored as served, so the served-bytes pin applies
    pinned = {name: value for name, value in comparable.items() if value is not None}
    if not pinned:
        return None
    actual = _digests_of_file(path, list(pinned))
    return any(actual[name] == value for name, value in pinned.items())
