"""The ``data:`` mapping of one ``datasets.<name>`` entry of ``params.yaml``, checked into a source.

Three kinds are accepted: a built-in dataset (its name is enough: ``{format: idx}``), idx files of
the user's own (one sha256 per file) and an image folder. The formats and the keys each accepts
are :data:`numpynet.data.catalog.FORMATS`.
"""

from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Any

from numpynet.config.fields import describe, is_int, is_number, show, show_key
from numpynet.data.catalog import (
    BUILTIN,
    FORMATS,
    IDX_FILE_NAMES,
    IDX_ROLES,
    IMAGE_ARCHIVE_SUFFIXES,
    DatasetSource,
    ImageFolderSource,
    RemoteFile,
    is_hex_digest,
    is_url,
    local_file_name,
    url_file_name,
)

# Each side of an image-folder `size`, in pixels. A 4096 x 4096 RGB image is already 48 MiB as
# uint8 and 200 MiB as the float32 the network trains on, per image; a typo such as 32000 would
# only fail much later, out of memory, after the whole folder was decoded.
MAX_IMAGE_SIDE = 4096


def parse_data_source(
    name: str, data: Any, path: str, problems: list[str]
) -> DatasetSource | ImageFolderSource | None:
    """Check ``datasets.<name>.data`` (``path``) and return the source it describes.

    Returns None after appending every problem found to ``problems``.
    """
    if not isinstance(data, dict):
        problems.append(f"{path}: expected a mapping such as {{format: idx}}, got {describe(data)}")
        return None
    builtin = BUILTIN.get(name)
    fmt = data.get("format", builtin.format if builtin else None)
    if not isinstance(fmt, str) or fmt not in FORMATS:
        problems.append(f"{path}.format: got {show(fmt)}; expected one of {', '.join(FORMATS)}")
        return None
    allowed = FORMATS[fmt]
    for key in sorted(set(data) - set(allowed), key=str):
        problems.append(
            f"{path}.{show_key(key)}: unknown key for format {fmt} "
            f"(accepted: {', '.join(allowed)})"
        )
    if fmt == "image-folder":
        return _parse_image_folder(name, data, path, problems)
    if builtin is not None and builtin.format != fmt:
        problems.append(
            f"{path}.format: the built-in {name} has format {builtin.format!r}, got {fmt!r}"
        )
        return None
    return _parse_remote_files(name, fmt, builtin, data, path, problems)


def _parse_remote_files(name, fmt, builtin, data, path, problems):
    urls = data.get("urls", list(builtin.urls) if builtin else [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        problems.append(f"{path}.urls: wrong type {describe(urls)}; expected a list of base URLs")
        return None
    sha256 = data.get("sha256")
    if sha256 is None:
        if builtin is None:
            problems.append(
                f"{path}: '{name}' is not a built-in dataset "
                f"(built-in: {', '.join(sorted(BUILTIN))}); "
                f"to use your own idx files give {path}.sha256 with one checksum per file "
                f"({', '.join(IDX_ROLES)}), or use format: image-folder"
            )
            return None
        return dataclasses.replace(builtin, urls=tuple(urls))
    if not isinstance(sha256, dict) or set(sha256) != set(IDX_ROLES):
        problems.append(f"{path}.sha256: expected a mapping with exactly {', '.join(IDX_ROLES)}")
        return None
    if not all(is_hex_digest(v, "sha256") for v in sha256.values()):
        problems.append(f"{path}.sha256: every value must be 64 hexadecimal digits")
        return None
    files = {role: RemoteFile(IDX_FILE_NAMES[role], sha256=sha256[role]) for role in IDX_ROLES}
    return DatasetSource(name=name, format=fmt, files=files, urls=tuple(urls))


def _location_problem(location: str) -> str | None:
    """Why an image folder's ``source`` cannot be stored under a name of its own, or None."""
    if "\0" in location:
        return "holds a NUL character; give a path or URL without one"
    if not is_url(location):
        if local_file_name(location):
            return None
        return ("names no folder or archive of its own (such as '.', '..' or '/'); give the path "
                "of the folder that holds just the images, e.g. images/<name>")
    try:
        parsed = urllib.parse.urlparse(location)
    except ValueError as error:
        return f"is not a valid URL ({error})"
    if parsed.scheme.lower() in ("http", "https") and not parsed.hostname:
        return "has no host; give the archive's full URL, e.g. https://example.org/pets.tar.gz"
    if url_file_name(location) is None:
        return (
            f"is a URL whose path does not end in an archive's file name (one ending in "
            f"{', '.join(IMAGE_ARCHIVE_SUFFIXES)}; a query string may follow), which the download "
            f"is stored under and read as; link to the archive file itself, or download it and "
            f"give its local path"
        )
    return None


def _parse_image_folder(name, data, path, problems):
    before = len(problems)
    location = data.get("source")
    if not isinstance(location, str) or not location:
        problems.append(
            f"{path}.source: expected a directory, a .tar.gz/.zip archive or a URL, got "
            f"{describe(location)}"
        )
    else:
        problem = _location_problem(location)
        if problem:
            problems.append(f"{path}.source: {show(location)} {problem}")
    sha256 = data.get("sha256")
    if sha256 is not None and not is_hex_digest(sha256, "sha256"):
        problems.append(f"{path}.sha256: expected 64 hexadecimal digits (sha256sum of the archive)")
    elif sha256 is None and isinstance(location, str) and is_url(location):
        problems.append(f"{path}.sha256: required for a URL source, so the download is verified")
    mode = data.get("mode")
    if mode not in (None, "L", "RGB"):
        problems.append(
            f"{path}.mode: got {show(mode)}; expected 'L' (grayscale), 'RGB' or null (inferred)"
        )
    size = data.get("size")
    if size is not None and not (
        isinstance(size, list)
        and len(size) == 2
        and all(is_int(v) and 0 < v <= MAX_IMAGE_SIDE for v in size)
    ):
        problems.append(
            f"{path}.size: got {show(size)}; expected [height, width] in pixels, each from 1 to "
            f"{MAX_IMAGE_SIDE}, or null to keep the images' own size"
        )
    test_fraction = data.get("test_fraction", 0.2)
    if not (is_number(test_fraction) and 0 < test_fraction < 1):
        problems.append(
            f"{path}.test_fraction: got {show(test_fraction)}; expected a number in (0, 1)"
        )
    split_seed = data.get("split_seed", 0)
    if not (is_int(split_seed) and split_seed >= 0):
        problems.append(f"{path}.split_seed: got {show(split_seed)}; expected an integer >= 0")
    if len(problems) > before:
        return None
    return ImageFolderSource(
        name=name,
        location=location,
        sha256=sha256.lower() if sha256 else None,
        mode=mode,
        size=tuple(size) if size else None,
        test_fraction=float(test_fraction),
        split_seed=split_seed,
    )
