"""Decoding image files with Pillow into one uint8 (N, H, W, C) array.

Images are converted to one mode, ``"L"`` (grayscale, one channel) or ``"RGB"`` (three), as
:mod:`numpynet.data.formats.image_modes` says for each Pillow mode (an alpha channel is dropped,
16-bit values keep their high byte, an image that cannot be represented faithfully is refused);
palette images count as color when the mode is inferred, EXIF orientation is not applied (pixels
are taken as stored), and of an animated image only the first frame is read. Without a declared
size every image must have the same size; with one, each is resized to it with bilinear resampling
(:data:`RESAMPLING`). An image Pillow cannot decode raises
:class:`~numpynet.errors.DataFormatError` naming the file.

Memory is bounded by :class:`~numpynet.data.read_limits.ReadLimits`: an image whose header
declares more than ``max_image_pixels`` is refused before any pixel is decoded (Pillow's own check,
a mere warning below twice its ``MAX_IMAGE_PIXELS``, is silenced here, not changed), and the
dataset's array is checked against ``max_dataset_bytes`` before it is allocated.

JPEG files in an archive that repeat a header already read are decoded without Pillow parsing it
again (see :class:`_JpegHeaders`): the same pixels, and the same errors.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from numpynet.data.formats.archive import ListedFile
from numpynet.data.formats.image_modes import UnrepresentableImage, convert, natural_mode
from numpynet.data.formats.source_names import SourceNames
from numpynet.data.read_limits import DEFAULT_LIMITS, PILLOW_PIXEL_CEILING, ReadLimits, amount
from numpynet.errors import DataFormatError

RESAMPLING = Image.Resampling.BILINEAR


def decode_images(
    files: list[ListedFile],
    location: Path | SourceNames,
    mode: str | None,
    size: tuple[int, int] | None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> np.ndarray:
    """Decode ``files`` into one uint8 (N, H, W, C) array, opening each file once.

    ``mode`` is ``"L"``, ``"RGB"`` or ``None``; ``size`` is (height, width) or ``None``. Without a
    declared ``size`` the first image sets it and every other must match. Without a ``mode`` the
    array starts grayscale and turns RGB at the first color image: the gray images decoded so far
    get their value in all three channels, just what Pillow's conversion gives. ``location`` (a
    path, or the :class:`SourceNames` of a user's source) only names the dataset in error
    messages. ``limits`` bound each image's pixels and the array.
    """
    place = SourceNames.of(location).place()
    out: np.ndarray | None = None
    first_name = ""
    headers = _JpegHeaders(limits.max_image_pixels)
    with warnings.catch_warnings():
        # Pillow warns about large images it opens anyway; the limit is enforced here instead.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        for i, f in enumerate(files):
            with headers.open(f, place) as image:
                shape = (image.height, image.width)
                if out is None:
                    first_name = f.name
                    channels = 1 if (mode or _natural_mode(image, f, place)) == "L" else 3
                    out = _allocate(len(files), (*(size or shape), channels), place, limits)
                elif (mode is None and out.shape[-1] == 1
                      and _natural_mode(image, f, place) == "RGB"):
                    gray = out
                    out = _allocate(len(files), (*out.shape[1:3], 3), place, limits)
                    out[:i] = gray[:i]  # broadcasts the single channel to three
                    del gray
                if size is None and shape != out.shape[1:3]:
                    raise DataFormatError(
                        f"image {f.name!r} in {place} is {_hw(shape)} (height x width), but "
                        f"{first_name!r} and the images before it are {_hw(out.shape[1:3])}; "
                        "images must share one size, or declare a size (height, width) to "
                        "resize them all to"
                    )
                out[i] = _pixels(image, f, place, out.shape[1:])
    if out is None:
        raise ValueError("no files to decode")
    return out


def _allocate(
    count: int, shape: tuple[int, int, int], place: str, limits: ReadLimits
) -> np.ndarray:
    """An empty uint8 array of ``count`` images of ``shape``, if ``max_dataset_bytes`` allows."""
    total = count * math.prod(shape)
    if total > limits.max_dataset_bytes:
        raise DataFormatError(
            f"{place}: its {count:,} images decode to {'x'.join(map(str, shape))} bytes each "
            f"(height x width x channels), {amount(total)} in all, more than "
            f"preprocess.max_dataset_bytes = {amount(limits.max_dataset_bytes)}; nothing was "
            "written. Declare a smaller size (or mode L) for the dataset, or raise "
            "preprocess.max_dataset_bytes in params.yaml if the memory is there (training needs "
            "about four times as much, as float32)"
        )
    return np.empty((count, *shape), dtype=np.uint8)


class _JpegHeaders:
    """Pillow's readings of the JPEG headers met so far, to decode files that repeat one.

    Pillow parses a JPEG's header (its markers up to the start of the scan) in Python, which
    costs about as much as decoding a small image; files written by one program with one setting
    (every image of CIFAR-10's JPEG copy) repeat the same header bytes. What Pillow makes of a
    header (mode, size, the decoder and its arguments) depends on those bytes alone, and loading
    runs that decoder over the whole file: so a file whose bytes start with a header read before
    is decoded directly, with :func:`PIL.Image.frombytes` and the same decoder and arguments,
    to the same pixels. Should that fail, the file takes the ordinary path, which names the
    error as it always did. Only in-memory (archive) files qualify; at most a few small headers
    are kept, so a dataset of varied headers costs a few dictionary lookups per file.
    """

    _MAX_HEADERS = 16
    _MAX_HEADER_BYTES = 4096

    def __init__(self, max_pixels: int) -> None:
        # header length -> header bytes -> (mode, size, decoder arguments)
        self._readings: dict[int, dict[bytes, tuple[str, tuple[int, int], tuple]]] = {}
        self._count = 0
        self._max_pixels = max_pixels

    def open(self, f: ListedFile, place: str) -> Image.Image:
        """:func:`_open_image`, or the decoded image when ``f`` starts with a known header."""
        if not isinstance(f.source, bytes):
            return _open_image(f, place, self._max_pixels)
        for length, readings in self._readings.items():
            reading = readings.get(f.source[:length])
            if reading is not None:
                image = _decode_jpeg(f.source, *reading)
                if image is not None:
                    return image
        image = _open_image(f, place, self._max_pixels)
        if self._count < self._MAX_HEADERS:
            self._remember(image, f.source)
        return image

    def _remember(self, image: Image.Image, data: bytes) -> None:
        # Only a plain JPEG (not MPO, no "mp" data that could make one) that is loaded from
        # offset 0 by one decoder over the whole image; its fp has read exactly the header.
        if type(image) is not JpegImagePlugin.JpegImageFile or "mp" in image.info:
            return
        if len(image.tile) != 1 or image.decoderconfig:
            return
        codec, extents, offset, args = image.tile[0]
        length = image.fp.tell()
        if codec != "jpeg" or tuple(extents) != (0, 0, *image.size) or offset != 0:
            return
        # At least the 16 bytes Image.open picks the format plugin by.
        if not 16 <= length <= self._MAX_HEADER_BYTES:
            return
        readings = self._readings.setdefault(length, {})
        if data[:length] not in readings:
            readings[data[:length]] = (image.mode, image.size, tuple(args))
            self._count += 1


def _decode_jpeg(
    data: bytes, mode: str, size: tuple[int, int], args: tuple
) -> Image.Image | None:
    """``data`` decoded as Pillow loads a JPEG it read as ``mode``, ``size`` and ``args``.

    Only headers of images within the pixel limit are remembered, so ``size`` is within it.
    """
    try:
        return Image.frombytes(mode, size, data, "jpeg", args)
    except MemoryError:
        raise
    except Exception:  # the ordinary path names the error, or copes (LOAD_TRUNCATED_IMAGES)
        return None


def _open_image(f: ListedFile, place: str, max_pixels: int) -> Image.Image:
    """Open ``f`` lazily (header only); raise a DataFormatError naming it if Pillow cannot, or if
    it declares more than ``max_pixels`` pixels (then nothing is decoded)."""
    try:
        source = f.source if isinstance(f.source, Path) else io.BytesIO(f.source)
        image = Image.open(source)
    except Image.DecompressionBombError as exc:  # more than PILLOW_PIXEL_CEILING
        found = re.search(r"\((\d+) pixels\)", str(exc))  # "Image size (N pixels) exceeds..."
        count = f"{int(found[1]):,}" if found else f"over {PILLOW_PIXEL_CEILING:,}"
        pixels = f"{count} pixels (more than Pillow opens at all)"
        raise _too_many_pixels(f, place, max_pixels, pixels) from None
    except MemoryError:
        raise  # the machine's problem, not the file's: the stage says so
    # Pillow's format plugins fail on garbage in many ways (OSError, SyntaxError, struct.error,
    # IndexError, EOFError...); any of them means this file is bad.
    except Exception as exc:
        raise _undecodable(f, place, exc) from exc
    if image.width * image.height > max_pixels:
        image.close()
        pixels = f"{image.height}x{image.width} (height x width, {image.width * image.height:,})"
        raise _too_many_pixels(f, place, max_pixels, f"{pixels} pixels")
    return image


def _too_many_pixels(f: ListedFile, place: str, limit: int, pixels: str) -> DataFormatError:
    if limit >= PILLOW_PIXEL_CEILING:  # no setting reads it: only a smaller image will do
        return DataFormatError(
            f"image {f.name!r} in {place} declares {pixels}, more than Pillow opens "
            f"({PILLOW_PIXEL_CEILING:,}); nothing was decoded. Scale the image down"
        )
    return DataFormatError(
        f"image {f.name!r} in {place} declares {pixels}, more than "
        f"preprocess.max_image_pixels = {limit:,}; nothing was decoded. Remove the file, or "
        f"raise preprocess.max_image_pixels in params.yaml (up to {PILLOW_PIXEL_CEILING:,}) if it "
        "is a genuine image"
    )


def _undecodable(f: ListedFile, place: str, exc: Exception) -> DataFormatError:
    return DataFormatError(
        f"cannot decode image {f.name!r} in {place}: {_without_path(exc, f)}; remove or fix the "
        f"file"
    )


def _without_path(exc: Exception, f: ListedFile) -> str:
    """Pillow's words without the path it opened ("cannot identify image file '/…/1.png'"):
    the message names the file already, as the user knows it, and the path may be the copy."""
    detail = str(exc)
    if isinstance(f.source, Path):
        detail = detail.replace(f" {str(f.source)!r}", "").replace(str(f.source), "the file")
    return detail


def _natural_mode(image: Image.Image, f: ListedFile, place: str) -> str:
    """The mode an image keeps when the dataset's mode is inferred: "L" if it has no color."""
    try:
        return natural_mode(image.mode)
    except UnrepresentableImage as exc:
        raise _unrepresentable(f, place, exc) from None


def _pixels(
    image: Image.Image, f: ListedFile, place: str, shape: tuple[int, int, int]
) -> np.ndarray:
    """The image converted and resized to ``shape`` (height, width, channels)."""
    height, width, channels = shape
    try:
        converted = convert(image, "L" if channels == 1 else "RGB")
        if converted.size != (width, height):  # Pillow sizes are (width, height)
            converted = converted.resize((width, height), RESAMPLING)
        if converted is not image:
            image.close()  # frees the decoded original before its copy is made below
        # The raw bytes of an L or RGB image are its pixels in HWC order: what np.asarray gives,
        # which gets them the same way and then builds an array from its interface description.
        return np.frombuffer(converted.tobytes(), dtype=np.uint8).reshape(shape)
    except UnrepresentableImage as exc:
        raise _unrepresentable(f, place, exc) from None
    except MemoryError:
        raise
    except Exception as exc:  # truncated or malformed data surfaces only when decoding
        raise _undecodable(f, place, exc) from exc


def _unrepresentable(f: ListedFile, place: str, exc: UnrepresentableImage) -> DataFormatError:
    return DataFormatError(f"image {f.name!r} in {place} {exc}")


def _hw(shape: tuple[int, int]) -> str:
    return f"{shape[0]}x{shape[1]}"
