"""The ``preprocess:`` section of ``params.yaml``: the validation split, and the bounds on reading.

``val_fraction`` and ``seed`` choose the validation split. The four ``max_*`` keys bound the memory
that reading an image folder may take (what each bounds, and why these defaults:
:mod:`numpynet.data.read_limits`, whose ``ReadLimits`` defaults are the ones here). Each may be
left out and takes its default, so a params file written before they existed still works.
``max_image_pixels`` goes up to :data:`PILLOW_PIXEL_CEILING`, past which Pillow refuses to open an
image whatever this says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from numpynet.config.fields import field_check
from numpynet.data.read_limits import DEFAULT_LIMITS, PILLOW_PIXEL_CEILING

MAX_READ_BYTES = 2**40  # 1 TiB: far past any memory, and still catches a typo


def _bytes_up_to(limit: int) -> dict:
    return field_check(
        lambda v: 1 <= v <= limit, f"an integer number of bytes from 1 to {limit} (1 TiB)"
    )


@dataclass(frozen=True)
class PreprocessConfig:
    """The validation split (a DVC dependency) and the bounds on reading (not one)."""

    val_fraction: float = field(metadata=field_check(lambda v: 0 < v < 1, "a number in (0, 1)"))
    seed: int = field(metadata=field_check(lambda v: v >= 0, "an integer >= 0"))
    max_file_bytes: int = field(
        default=DEFAULT_LIMITS.max_file_bytes, metadata=_bytes_up_to(MAX_READ_BYTES)
    )
    max_archive_bytes: int = field(
        default=DEFAULT_LIMITS.max_archive_bytes, metadata=_bytes_up_to(MAX_READ_BYTES)
    )
    max_image_pixels: int = field(
        default=DEFAULT_LIMITS.max_image_pixels,
        metadata=field_check(
            lambda v: 1 <= v <= PILLOW_PIXEL_CEILING,
            f"an integer number of pixels from 1 to {PILLOW_PIXEL_CEILING} (Pillow refuses "
            "larger images itself)",
        ),
    )
    max_dataset_bytes: int = field(
        default=DEFAULT_LIMITS.max_dataset_bytes, metadata=_bytes_up_to(MAX_READ_BYTES)
    )
