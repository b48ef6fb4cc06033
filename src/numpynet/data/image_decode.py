"""Decoding image files with Pillow into one uint8 (N, H, W, C) array.

Images are converted to one mode, ``"L"`` (grayscale, one channel) or ``"RGB"`` (three); an alpha
channel is dropped, palette images count as color when the mode is inferred, EXIF orientation is
not applied (pixels are taken as stored), and of an animated image only the first frame is read.
Without a declared size every image must have the same size; with one, each is resized to it with
bilinear resampling (:data:`RESAMPLING`). An image Pillow cannot decode raises
:class:`~numpynet.errors.DataFormatError` naming the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from numpynet.data.archive_listing import ListedFile
from numpynet.errors import DataFormatError

RESAMPLING = Image.Resampling.BILINEAR
# Pillow modes whose pixels carry no color; anything else (RGB, RGBA, CMYK, palette...) is color.
_GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})


def decode_images(
    files: list[ListedFile], location: Path, mode: str | None, size: tuple[int, int] | None
) -> np.ndarray:
    """Decode ``files`` into one uint8 (N, H, W, C) array, opening each file once.

    ``mode`` is ``"L"``, ``"RGB"`` or ``None``; ``size`` is (height, width) or ``None``. Without a
    declared ``size`` the first image sets it and every other must match. Without a ``mode`` the
    array starts grayscale and turns RGB at the first color image: the gray images decoded so far
    get their value in all three channels, just what Pillow's conversion gives. ``location`` only
    names the dataset in error messages.
    """
    out: np.ndarray | None = None
    first_name = ""
    for i, f in enumerate(files):
        with _open_image(f, location) as image:
            shape = (image.height, image.width)
            if out is None:
                first_name = f.name
                channels = 1 if (mode or _natural_mode(image)) == "L" else 3
                out = np.empty((len(files), *(size or shape), channels), dtype=np.uint8)
            elif mode is None and out.shape[-1] == 1 and _natural_mode(image) == "RGB":
                gray, out = out, np.empty(out.shape[:3] + (3,), dtype=np.uint8)
                out[:i] = gray[:i]  # broadcasts the single channel to three
                del gray
            if size is None and shape != out.shape[1:3]:
                raise DataFormatError(
                    f"image {f.name!r} in {location} is {_hw(shape)} (height x width), but "
                    f"{first_name!r} and the images before it are {_hw(out.shape[1:3])}; images "
                    "must share one size, or declare a size (height, width) to resize them all to"
                )
            out[i] = _pixels(image, f, location, out.shape[1:])
    if out is None:
        raise ValueError("no files to decode")
    return out


def _open_image(f: ListedFile, location: Path) -> Image.Image:
    """Open ``f`` lazily (header only); raise a DataFormatError naming it if Pillow cannot."""
    try:
        source = f.source if isinstance(f.source, Path) else io.BytesIO(f.source)
        return Image.open(source)
    # Pillow's format plugins fail on garbage in many ways (OSError, SyntaxError, struct.error,
    # IndexError, EOFError, DecompressionBombError...); any of them means this file is bad.
    except Exception as exc:
        raise _undecodable(f, location, exc) from exc


def _undecodable(f: ListedFile, location: Path, exc: Exception) -> DataFormatError:
    return DataFormatError(
        f"cannot decode image {f.name!r} in {location}: {exc}; remove or fix the file"
    )


def _natural_mode(image: Image.Image) -> str:
    """The mode an image keeps when the dataset's mode is inferred: "L" if it has no color."""
    return "L" if image.mode in _GRAYSCALE_MODES else "RGB"


def _pixels(
    image: Image.Image, f: ListedFile, location: Path, shape: tuple[int, int, int]
) -> np.ndarray:
    """The image converted and resized to ``shape`` (height, width, channels)."""
    height, width, channels = shape
    try:
        if image.mode != ("L" if channels == 1 else "RGB"):
            image = image.convert("L" if channels == 1 else "RGB")
        if image.size != (width, height):  # Pillow sizes are (width, height)
            image = image.resize((width, height), RESAMPLING)
        # The raw bytes of an L or RGB image are its pixels in HWC order: what np.asarray gives,
        # which gets them the same way and then builds an array from its interface description.
        return np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(shape)
    except Exception as exc:  # truncated or malformed data surfaces only when decoding
        raise _undecodable(f, location, exc) from exc


def _hw(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"
