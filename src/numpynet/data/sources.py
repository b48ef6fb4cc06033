"""Getting a dataset's files into ``data/raw/<name>/``, whichever kind of source it has.

Built-in and idx datasets come from their list of URLs (see :mod:`numpynet.data.download`); a
user's image folder comes from the one location given in ``params.yaml``: a directory, an archive
on disk, or an archive at a URL. The source types themselves live in :mod:`numpynet.data.catalog`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from numpynet.data.catalog import DatasetSource, ImageFolderSource, RemoteFile
from numpynet.data.checksums import sha256_of_file
from numpynet.data.download import candidate_urls, download_dataset, fetch_file
from numpynet.errors import DownloadError
from numpynet.files import atomic_path
from numpynet.log import Log, log_to_stderr


def acquire_dataset(
    source: DatasetSource | ImageFolderSource,
    out_dir: Path,
    *,
    mirror: str | None,
    timeout: float,
    log: Log = log_to_stderr,
) -> None:
    """Fetch or copy every file of ``source`` into ``out_dir``, verified where pinned."""
    if isinstance(source, DatasetSource):
        download_dataset(source, out_dir, mirror=mirror, timeout=timeout, log=log)
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    dest = out_dir / source.local_name
    if source.is_url:
        base_url = source.location[: -len(source.local_name)]
        candidates = candidate_urls(source.local_name, source.name, [base_url], mirror)
        remote = RemoteFile(source.local_name, sha256=source.sha256, decompress=False)
        fetch_file(remote, dest, candidates, timeout=timeout, log=log)
        return
    location = Path(source.location).expanduser()
    if location.is_dir():
        # A snapshot of the folder, so the DVC cache holds exactly what was trained on.
        shutil.copytree(location, dest, symlinks=False)
        log(f"{source.name}: copied folder {location}")
    elif location.is_file():
        if source.sha256 is not None:
            remote = RemoteFile(source.local_name, sha256=source.sha256, decompress=False)
            fetch_file(remote, dest, [str(location.resolve())], timeout=timeout, log=log)
            return
        with atomic_path(dest) as tmp:
            shutil.copyfile(location, tmp)
        log(
            f"{source.name}: copied {location} (not verified; to pin it, set "
            f"datasets.{source.name}.data.sha256: {sha256_of_file(dest)})"
        )
    else:
        raise DownloadError(
            f"datasets.{source.name}.data.source: {location} does not exist (relative paths are "
            f"taken from the project root); point it at a folder, an archive or a URL"
        )
