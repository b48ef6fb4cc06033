"""Getting a dataset's files into ``data/raw/<name>/``, whichever kind of source it has.

Built-in and idx datasets come from their list of URLs (see :mod:`numpynet.data.download`); a
user's image folder comes from the one location given in ``params.yaml``: a directory, an archive
on disk, or an archive at a URL.
"""

from __future__ import annotations

import posixpath
import shutil
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from numpynet.data.catalog import DatasetSource, RemoteFile
from numpynet.data.download import (
    candidate_urls,
    download_dataset,
    fetch_file,
    is_url,
    sha256_of_file,
)
from numpynet.errors import DownloadError
from numpynet.files import atomic_path
from numpynet.log import Log, log_to_stderr


@dataclass(frozen=True)
class ImageFolderSource:
    """A user's own images, laid out as ``[<split>/]<class>/<image>`` (see image_folder.py).

    ``location`` is a directory, a ``.tar``/``.tar.gz``/``.tgz``/``.zip`` archive, or an archive's
    URL; ``sha256`` pins the archive's bytes (required for a URL, so downloads are verified).
    """

    name: str
    location: str
    sha256: str | None
    mode: str | None
    size: tuple[int, int] | None
    test_fraction: float
    split_seed: int
    format: str = "image-folder"

    @property
    def is_url(self) -> bool:
        return is_url(self.location)

    @property
    def local_name(self) -> str:
        """The file or folder name the source gets inside ``data/raw/<name>/``."""
        if self.is_url:
            return posixpath.basename(urllib.parse.urlparse(self.location).path.rstrip("/"))
        return Path(self.location).resolve().name


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
