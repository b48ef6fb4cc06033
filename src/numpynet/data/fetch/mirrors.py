"""Where a dataset's files are looked for: a mirror first (``NUMPYNET_MIRROR``), then the sources.

A mirror is a URL (``http(s)://``, ``file://``) or a local folder, holding either a folder per
dataset or one dataset's files. Messages show a URL without its query or password, which may sign
it.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from collections.abc import Sequence
from pathlib import Path

from numpynet.data.catalog import is_url
from numpynet.errors import DownloadError

MIRROR_ENV = "NUMPYNET_MIRROR"
# Any "<scheme>://" prefix: a URL of a kind the download code does not speak (ftp, s3, gs …),
# which must not be taken for a relative folder name.
_URL_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def resolve_mirror(mirror: str | None) -> str | None:
    """Check a mirror setting: a URL, or a folder that exists; None when there is no mirror.

    A relative folder is refused when it is not there: queued and ``--temp`` experiments run in a
    copy of the project elsewhere, where a path that worked in the project means something else.
    """
    if not mirror or is_url(mirror):
        return mirror or None
    scheme = _URL_SCHEME.match(mirror)
    if scheme:
        raise DownloadError(
            f"{MIRROR_ENV}={shown_source(mirror)}: {scheme.group(1)}:// URLs are not supported; "
            f"give an http://, https:// or file:// URL, or a folder (an absolute path); for "
            f"other storage, copy the files into a folder first"
        )
    folder = os.path.expanduser(mirror)
    if not os.path.isabs(folder) and not os.path.isdir(folder):
        raise DownloadError(
            f"{MIRROR_ENV}={mirror} is a relative path and no such folder exists here "
            f"({os.getcwd()}); give an absolute path, e.g. {MIRROR_ENV}=$(realpath {mirror}), "
            f"so that queued and --temp experiments find it too"
        )
    return mirror


def candidate_urls(
    file_name: str, dataset_name: str, urls: Sequence[str], mirror: str | None
) -> list[str]:
    """List the places to fetch ``file_name`` from, in the order they should be tried.

    A mirror comes first, both as ``<mirror>/<dataset_name>/<file_name>`` and as
    ``<mirror>/<file_name>``, so it may point at a folder of datasets or at one dataset's folder.
    A mirror that is not an http(s):// or file:// URL is a local directory; it is made absolute
    against the current directory so the candidates do not depend on where they are opened.
    The dataset's own ``urls`` (base URLs ending in ``/``) follow.
    """
    candidates: list[str] = []
    if mirror:
        if is_url(mirror):
            base = mirror.rstrip("/")
            candidates += [f"{base}/{dataset_name}/{file_name}", f"{base}/{file_name}"]
        else:
            base_dir = Path(os.path.abspath(os.path.expanduser(mirror)))
            candidates += [str(base_dir / dataset_name / file_name), str(base_dir / file_name)]
    for url in urls:
        base_url = url if url.endswith("/") else url + "/"
        candidates.append(base_url + file_name)
    return candidates


def shown_source(candidate: str) -> str:
    """``candidate`` as messages show it: a URL without its query or password, which may sign it."""
    if not is_url(candidate) and not _URL_SCHEME.match(candidate):
        return candidate
    parts = urllib.parse.urlsplit(candidate)
    host = parts.netloc.rpartition("@")[2]
    query = "…" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))
