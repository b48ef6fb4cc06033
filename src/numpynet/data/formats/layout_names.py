"""The names a dataset's layout is read from, in one Unicode normalization.

An accented letter has two encodings in Unicode: composed (NFC, ``é`` as U+00E9, what Linux and
Windows keyboards type) and decomposed (NFD, ``e`` then U+0301, what macOS's HFS+ stored and
many copies from a Mac still carry). They print alike, yet compare unequal: a class folder
``café`` typed on Linux and one copied from a Mac would be two classes that print identically,
and a test folder ``café`` would have "no counterpart" in a train folder ``café``. So every
folder and image name is read in NFC (class names included, as ``dataset.json`` records them),
and two folders whose names are equal once normalized are refused, naming both with escapes that
show the difference, since the images of one class must not be split, or merged, by accident.

Names that differ only by case (``Cat/`` and ``cat/``) print differently and are distinct on the
file systems the copy can be made on; they stay two classes. A folder source copied onto a file
system that folds case or normalization is refused by the copy instead
(:mod:`numpynet.data.fetch.local_copy`).

Two image files of one folder equal once normalized stay two images (nothing is lost); they are
ordered by their stored names, so the order never depends on the listing's.
"""

from __future__ import annotations

import unicodedata

from numpynet.data.formats.archive import ListedFile, Parts
from numpynet.data.formats.source_names import SourceNames
from numpynet.errors import DataFormatError


def normalized(
    images: list[ListedFile], folders: set[Parts], names: SourceNames
) -> tuple[list[ListedFile], set[Parts]]:
    """``images`` with their parts in NFC (their ``name`` kept as stored, for messages) and
    ``folders`` in NFC. Raises :class:`DataFormatError` for two folders equal once normalized."""
    if all(f.name.isascii() for f in images) and all(_ascii(p) for p in folders):
        return images, folders  # ASCII is NFC: the common case costs one pass
    # Every folder above one too (an archive may list "a/b/" alone), so that the shallowest
    # clash is found.
    every = {folder[:depth] for folder in folders for depth in range(1, len(folder) + 1)}
    in_nfc = {folder: _nfc(folder) for folder in every}
    _refuse_lookalikes(in_nfc, names)
    images = [
        ListedFile(f.name, in_nfc.get(f.parts[:-1], _nfc(f.parts[:-1])) + _nfc(f.parts[-1:]),
                   f.source)
        for f in images
    ]
    return images, {in_nfc[folder] for folder in folders}


def _escaped(text: str) -> str:
    """``text`` quoted with every character outside ASCII escaped (``'cafe\\u0301'``): what tells
    two names apart that print alike."""
    return ascii(text)


def _ascii(parts: Parts) -> bool:
    return all(part.isascii() for part in parts)


def _nfc(parts: Parts) -> Parts:
    return tuple(part if part.isascii() else unicodedata.normalize("NFC", part) for part in parts)


def _refuse_lookalikes(in_nfc: dict[Parts, Parts], names: SourceNames) -> None:
    """Refuse the shallowest pair of folders whose paths are equal in NFC. Being the shallowest,
    the two differ in their last name only: their parents are one folder."""
    stored_by_nfc: dict[Parts, list[Parts]] = {}
    for stored, nfc in in_nfc.items():
        stored_by_nfc.setdefault(nfc, []).append(stored)
    clashes = [sorted(group) for group in stored_by_nfc.values() if len(group) > 1]
    if not clashes:
        return
    first, second = min(clashes, key=lambda group: (len(group[0]), group))[:2]
    raise DataFormatError(
        f"{names.place()}: the folders {_escaped('/'.join(first))} and "
        f"{_escaped('/'.join(second))} have names that differ only in how their letters are "
        f"encoded in Unicode (the first {_form(first[-1])}, the second {_form(second[-1])}; "
        f"macOS writes accented letters decomposed, Linux and Windows composed), so they print "
        f"alike and would be read as one name; nothing was decoded. Merge them: move the images "
        f"of one into the other and remove the empty one"
    )


def _form(name: str) -> str:
    """Which normalization ``name`` is in, for the message."""
    for form, said in (("NFC", "composed (NFC)"), ("NFD", "decomposed (NFD)")):
        if unicodedata.is_normalized(form, name):
            return said
    return "in neither NFC nor NFD"

