"""Whether some bytes are a web page: what a dataset file, or an archive of images, never is.

A mirror that answers every path with its home page, a login or error page, or a page saved
from a browser in place of the file would otherwise be reported as a corrupt gzip stream or an
unreadable archive. Used by the download (fetch/download.py) and by preprocess's reading of
archives (formats/archive_kind.py).
"""

from __future__ import annotations

# Enough of a file's start to see a page's first tag after a byte-order mark and blanks.
SNIFF_BYTES = 512
_PAGE_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<!--")


def looks_like_a_web_page(head: bytes) -> bool:
    """Whether ``head``, a file's first bytes, starts as an HTML page does."""
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").lower().startswith(_PAGE_STARTS)
