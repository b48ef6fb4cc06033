"""How a message names a user's image folder or archive: as the source ``params.yaml`` gives,
with the copy preprocess read only in parentheses.

The download stage copies a local folder or archive (``datasets.<name>.data.source``) whole into
``data/raw/<name>/<its last component>`` (:mod:`numpynet.data.fetch.local_copy`: the same
relative paths, a link inside the folder copied as a file under the link's name), and stores an
archive's URL there under the URL's file name. So a path inside the copy, or a member name, is
the same path in the source. A file corrected in the copy is overwritten by the next download:
a message must send the user to the source, where the correction lasts, and say how the copy
catches up (DVC does not watch the source, so the download reruns only when forced or when the
pinned sha256 changes).

A location read directly (tests, a caller with no ``params.yaml``) is its own source: messages
name it as they always did.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from numpynet.data.catalog import ImageFolderSource, is_url


@dataclass(frozen=True)
class SourceNames:
    """The folder or archive preprocess reads (``read``) and the source it is a copy of.

    ``source`` is None when ``read`` is itself what the user gave.
    """

    read: Path
    source: ImageFolderSource | None = None

    @classmethod
    def of(cls, location: Path | str | SourceNames) -> SourceNames:
        """``location`` as is when it already is a :class:`SourceNames`, else its own source."""
        return location if isinstance(location, SourceNames) else cls(Path(location))

    @property
    def key(self) -> str | None:
        """The ``params.yaml`` key that gives the source, or None for a location read directly."""
        return None if self.source is None else f"datasets.{self.source.name}.data.source"

    def place(self) -> str:
        """The folder or archive as a whole, for a message: ``~/pets (datasets.pets.data.source,
        read from its copy data/raw/pets/pets)``; just the path for a location read directly."""
        if self.source is None:
            return str(self.read)
        given = self.source.location
        if is_url(given):
            # Imported here: only a URL source needs the download code (which hides a signed
            # link's query); predict and direct reads never load it.
            from numpynet.data.fetch.mirrors import shown_source

            return f"{shown_source(given)} ({self.key}, read from its download {self.read})"
        return f"{printable(given)} ({self.key}, read from its copy {self.read})"

    def after_correction(self) -> str:
        """What brings a corrected source into the copy, as the last clause of a message ("" for a
        location read directly): DVC reruns the download only when forced, or when the pin in
        params.yaml changes."""
        if self.source is None:
            return ""
        name = self.source.name
        # A pin covers an archive only: a folder is copied whatever sha256 says.
        pinned = self.source.sha256 is not None or is_url(self.source.location)
        if pinned and not self.read.is_dir():
            return (f"; once the archive is corrected, put its new sha256 under "
                    f"datasets.{name}.data.sha256 in params.yaml and run dvc repro (the copy in "
                    f"{self.read.parent} is replaced then)")
        return (f"; once the source is corrected, copy it again with dvc repro -f "
                f"download@{name} (DVC does not watch the source), then run dvc repro")


def printable(text: str) -> str:
    """``text`` as is when every character prints, else its ``repr`` (a line break in a path must
    not break the one-line message)."""
    return text if text.isprintable() else repr(text)
