"""The download stage's library: a dataset's files into ``data/raw/<name>/``, whatever the source.

Built-in and idx datasets come from their list of URLs, a mirror first
(:mod:`~numpynet.data.fetch.mirrors`, :mod:`~numpynet.data.fetch.download`); a user's image folder
comes from the one location given in ``params.yaml``: an archive at a URL (downloaded the same
way), or a directory or an archive on disk (:mod:`~numpynet.data.fetch.local_copy`). Every
transfer is bounded in time and size (:mod:`~numpynet.data.fetch.transport`), and a pinned file is
kept only when its checksum matches (:mod:`~numpynet.data.fetch.checksums`). The source types
themselves live in :mod:`numpynet.data.catalog`.
"""

from __future__ import annotations

from pathlib import Path

from numpynet.data.catalog import (
    DEFAULT_DEADLINE_S,
    DEFAULT_MAX_BYTES,
    DatasetSource,
    ImageFolderSource,
    RemoteFile,
)
from numpynet.data.fetch.download import download_dataset, fetch_file
from numpynet.data.fetch.local_copy import copy_local_source, source_key
from numpynet.data.fetch.mirrors import candidate_urls
from numpynet.errors import DownloadError
from numpynet.log import Log, log_to_stderr


def acquire_dataset(
    source: DatasetSource | ImageFolderSource,
    out_dir: Path,
    *,
    mirror: str | None,
    timeout: float,
    deadline: float = DEFAULT_DEADLINE_S,
    max_bytes: int = DEFAULT_MAX_BYTES,
    project_root: Path | None = None,
    log: Log = log_to_stderr,
) -> None:
    """Fetch or copy every file of ``source`` into ``out_dir``, verified where pinned.

    ``timeout``, ``deadline`` and ``max_bytes`` bound every transfer (see
    :func:`numpynet.data.fetch.download.fetch_file`). ``project_root`` is where relative local paths
    start and whose ``data/`` a folder source may not contain; the current directory when None.
    """
    limits = {"timeout": timeout, "deadline": deadline, "max_bytes": max_bytes}
    if isinstance(source, DatasetSource):
        download_dataset(source, out_dir, mirror=mirror, log=log, **limits)
        return
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if not source.local_name:  # params validation refuses these; a caller may not have validated
        raise DownloadError(
            f"{source_key(source)}: {source.location} names no file or folder of its own; give the "
            f"path of the folder or archive itself"
        )
    dest = out_dir / source.local_name
    if source.is_url:
        # The exact URL, query string and all (a signed link's signature is part of it), after
        # the mirror's copy under the stored name.
        candidates = candidate_urls(source.local_name, source.name, [], mirror) + [source.location]
        remote = RemoteFile(source.local_name, sha256=source.sha256, decompress=False)
        fetch_file(remote, dest, candidates, log=log, **limits)
        return
    copy_local_source(source, out_dir, dest, project_root, limits, log)
