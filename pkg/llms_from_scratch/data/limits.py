"""How many bytes a download may bring and how long one source may take.

A server that sends more than the file it was asked for (by mistake or on purpose) would otherwise fill the
disk before the checksum could reject the result, and one that sends a byte every few seconds never trips the
per-read timeout. So every source gets:

* a size cap: the asset's known size (for a zip archive, room for the member plus the archive's other files),
  or :data:`MAX_UNKNOWN_SIZE` where no size is published;
* a deadline for the whole transfer, connecting included: :data:`BASE_DEADLINE` plus one second per
  :data:`MIN_RATE` bytes expected, so a large checkpoint on a slow connection still finishes. The environment
  variable ``LLMS_DOWNLOAD_DEADLINE`` (seconds) replaces it, for very slow connections or for tests.
"""

from __future__ import annotations

import math
import os

from .asset import Asset

DEADLINE_ENV = "LLMS_DOWNLOAD_DEADLINE"
MAX_UNKNOWN_SIZE = 16 * 2**30  # bytes; the largest file without a published size, GPT-2 XL's weights, is 6.4 GB
BASE_DEADLINE = 600.0  # seconds every source gets, whatever its size
MIN_RATE = 100_000  # bytes per second: slower than this, a large file runs out of time
_ARCHIVE_SLACK = 16 * 2**20  # bytes of headers and other members a zip archive may hold beside the member we keep


def size_cap(asset: Asset) -> int:
    """The most bytes a URL of ``asset`` may send (the archive, where the URL serves one)."""
    if asset.size is None:
        return MAX_UNKNOWN_SIZE
    if asset.archive_member is not None:
        return 2 * asset.size + _ARCHIVE_SLACK  # a stored (uncompressed) member, plus as much again in other files
    return asset.size


def deadline_for(expected_bytes: int | None) -> float:
    """Seconds one source may take for a file of ``expected_bytes`` (None: unknown), or ``$LLMS_DOWNLOAD_DEADLINE``."""
    value = os.environ.get(DEADLINE_ENV)
    if value:
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise ValueError(f"{DEADLINE_ENV}={value!r} is not a positive number of seconds; set it to, say, 3600 "
                             "or unset it")
        return seconds
    return BASE_DEADLINE + (expected_bytes or 0) / MIN_RATE
