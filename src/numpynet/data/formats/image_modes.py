"""How an image of each Pillow mode becomes 8-bit grayscale (``"L"``) or ``"RGB"``: faithfully, or
not at all.

An input the pipeline cannot represent faithfully is refused with
:class:`UnrepresentableImage` (the caller names the file), never clipped or altered in silence.

=================================  ============================================================
Pillow mode                        what reading it does
=================================  ============================================================
``L``, ``RGB``                     kept as they are
``1`` (bilevel)                    0 and 1 become 0 and 255
``I;16``, ``I;16L/B/N`` (16-bit)   each value ``v`` becomes its high byte, ``v >> 8`` (0..65535
                                   onto 0..255 by the bit depth: 256 -> 1, 65535 -> 255), as
                                   Pillow reads 16-bit RGB PNG files
``I`` (32-bit signed integers)     kept when every value lies in 0..255 (an 8-bit image stored
                                   wide); refused otherwise: 32 bits have no white level to
                                   scale from
``F`` (32-bit floats)              when every value lies in [0, 1]: ``round(v * 255)`` (halves
                                   to even); refused otherwise (NaN, infinity, other ranges)
``LA``, ``PA``, ``RGBA``           the alpha channel is dropped (the color stored under a
                                   transparent pixel is what remains); ``P``/``PA`` through their
                                   palette
``La``, ``RGBa`` (premultiplied)   divided by alpha first (Pillow's ``LA``/``RGBA`` conversion),
                                   then alpha is dropped
``RGBX``                           the padding byte is dropped
``P`` (palette)                    looked up in its palette; color, even if the palette is gray
``CMYK``                           Pillow's conversion, without color management: approximate
``YCbCr``                          Pillow's conversion (JPEG's formulas), exact to +-1
``LAB``                            Pillow's CIE L*a*b* (D50) to sRGB conversion
``HSV``                            Pillow's conversion
any other mode                     refused
=================================  ============================================================

Grayscale modes (``1``, ``L``, ``LA``, ``La``, ``I``, ``I;16*``, ``F``) give one channel; the
rest are color. A color image read as ``L`` gets Pillow's ITU-R 601-2 luma
(``L = R * 299/1000 + G * 587/1000 + B * 114/1000``) of its RGB values; a grayscale image read as
``RGB`` gets its value in all three channels. ICC profiles and EXIF orientation are not applied.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

GRAYSCALE_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"})
COLOR_MODES = frozenset(
    {"P", "PA", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"}
)
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
# Modes Pillow cannot convert to "L" directly: through "LA" (undoing premultiplied alpha) or RGB.
_L_BY_WAY_OF = {"La": "LA", "LAB": "RGB"}
# Values per block when scaling a float image.
_BLOCK_VALUES = 1 << 20


class UnrepresentableImage(Exception):
    """An image whose pixels cannot become 8-bit L or RGB faithfully; says why and what to do."""


def natural_mode(mode: str) -> str:
    """``"L"`` for a mode without color, ``"RGB"`` for one with; refuse a mode not read."""
    if mode in GRAYSCALE_MODES:
        return "L"
    if mode in COLOR_MODES:
        return "RGB"
    raise _unknown_mode(mode)


def convert(image: Image.Image, target: str) -> Image.Image:
    """``image`` as an 8-bit ``target`` (``"L"`` or ``"RGB"``) image, as the module table says.

    Returns ``image`` itself when it already has that mode. Raises
    :class:`UnrepresentableImage` for a mode or values that cannot be read faithfully.
    """
    mode = image.mode
    if mode == target:
        return image
    if mode not in GRAYSCALE_MODES and mode not in COLOR_MODES:
        raise _unknown_mode(mode)
    if mode in _SIXTEEN_BIT:
        gray = _from_16_bit(image)
    elif mode == "I":
        gray = _from_32_bit(image)
    elif mode == "F":
        gray = _from_float(image)
    elif mode == "La" or (mode == "LAB" and target == "L"):
        return image.convert(_L_BY_WAY_OF[mode]).convert(target)
    else:
        return image.convert(target)  # Pillow's own conversion, as the table says
    return gray if target == "L" else gray.convert("RGB")


def _from_16_bit(image: Image.Image) -> Image.Image:
    # The high byte of each value (numpy reads I;16B as big-endian, the others as native).
    values = np.asarray(image)
    return Image.fromarray((values >> 8).astype(np.uint8))


def _from_32_bit(image: Image.Image) -> Image.Image:
    values = np.asarray(image)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 255:
        raise UnrepresentableImage(
            f"is a 32-bit integer image (Pillow mode I) with values from {low} to {high}; only "
            "values 0 to 255 are read as they are, since 32-bit integers have no white level to "
            "scale from. Save it as an 8-bit or 16-bit image"
        )
    return Image.fromarray(values.astype(np.uint8))


def _from_float(image: Image.Image) -> Image.Image:
    values = np.asarray(image)
    if not np.isfinite(values).all():
        raise UnrepresentableImage(
            "is a floating-point image (Pillow mode F) holding NaN or infinite values, which "
            "have no pixel value. Replace them, or save the image as 8-bit"
        )
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > 1:
        raise UnrepresentableImage(
            f"is a floating-point image (Pillow mode F) with values from {low:g} to {high:g}; "
            "only values in [0, 1] are read (as round(v * 255)), since no other range maps onto "
            "0..255 without guessing. Scale it to [0, 1], or save it as an 8-bit image"
        )
    # A block of rows at a time: a float32 temporary of the whole image would add 4 bytes per
    # pixel to the peak memory of decoding it.
    out = np.empty(values.shape, dtype=np.uint8)
    step = max(1, _BLOCK_VALUES // max(1, values.shape[1]))
    for start in range(0, values.shape[0], step):
        block = values[start : start + step] * np.float32(255)
        out[start : start + step] = np.rint(block, out=block)
    return Image.fromarray(out)


def _unknown_mode(mode: str) -> UnrepresentableImage:
    return UnrepresentableImage(
        f"has Pillow mode {mode!r}, which is not read (read: "
        f"{', '.join(sorted(GRAYSCALE_MODES | COLOR_MODES))}). Save it as 8-bit grayscale or RGB"
    )
