"""Messages about a user's images name the source params.yaml gives (the folder, the archive and
its member, the URL without its query), not the copy the download stage made of it in
data/raw/<name>/, which the next download overwrites: the copy appears only in parentheses, and
the message ends saying how a corrected source reaches the copy. The copy is made by the real
download code (local_copy.py, or a download over loopback), so the mapping is the real one."""

from __future__ import annotations

import hashlib
import io
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers.hostile_data import png, write_files
from numpynet.data.catalog import ImageFolderSource
from numpynet.data.fetch import acquire_dataset
from numpynet.data.formats.load import load_raw_dataset
from numpynet.data.formats.source_names import SourceNames
from numpynet.data.read_limits import ReadLimits
from numpynet.errors import DataFormatError


def image(value: int) -> bytes:
    return png(np.full((4, 5, 3), value, np.uint8))


GOOD = {f"{split}/{label}/{k}.png": image(10 * k + c) for split in ("train", "test")
        for c, label in enumerate(("cat", "dog")) for k in range(3 if split == "train" else 1)}

# Each hostile dataset, and what its message names inside the source.
CASES = {
    "broken-image": ({**GOOD, "train/cat/bad.png": b"not a png"},
                     "cannot decode image 'train/cat/bad.png' in {place}"),
    "pixel-bomb": ({**GOOD, "train/dog/huge.png": png(np.zeros((1, 2001, 3), np.uint8))},
                   "image 'train/dog/huge.png' in {place} declares 1x2001"),
    "too-few-images": ({k: v for k, v in GOOD.items()
                        if k not in ("train/dog/1.png", "train/dog/2.png")},
                       "{place}: class folder 'train/dog' holds 1 image"),
    "split-spelling": ({k.replace("train/", "Train/"): v for k, v in GOOD.items()},
                       "{place}: found Train/, named like split folders"),
    "normalization": ({**GOOD, **{f"train/{unicodedata.normalize(form, 'café')}/{k}.png":
                                  image(k) for form in ("NFC", "NFD") for k in range(2)}},
                      "{place}: the folders 'train/cafe\\u0301' and 'train/caf\\xe9'"),
}


def zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in sorted(files.items()):
            zf.writestr(name, data)
    return buffer.getvalue()


def copied_and_read(tmp_path: Path, location: str, sha256: str | None = None) -> tuple[str, Path]:
    """Copy ``location`` as the download stage does, read it as preprocess does: the message,
    and the copy's path."""
    source = ImageFolderSource("pets", location, sha256, None, None, 0.2, 0)
    raw = tmp_path / "project" / "data" / "raw" / "pets"
    acquire_dataset(source, raw, mirror=None, timeout=5, project_root=tmp_path / "project",
                    log=lambda line: None)
    with pytest.raises(DataFormatError) as refused:
        load_raw_dataset(source, raw, ReadLimits(max_image_pixels=2000))
    return str(refused.value), raw / source.local_name


def assert_names_the_source(message: str, copy: Path, place: str, said: str) -> None:
    assert said.format(place=place) in message, message
    # The copy only inside the parentheses that follow the source.
    assert str(copy) not in message.replace(place, ""), message
    assert "\n" not in message


@pytest.mark.hostile
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_a_message_about_a_local_source_names_it_not_its_copy(tmp_path, case, kind):
    # Before: "cannot decode image 'train/cat/bad.png' in data/raw/pets/pets", a copy that the
    # next download overwrites.
    files, said = CASES[case]
    project = tmp_path / "project"
    if kind == "folder":
        write_files(project / "images" / "pets", files)
        location = "images/pets"
    else:
        (project / "images").mkdir(parents=True)
        (project / "images" / "pets.zip").write_bytes(zipped(files))
        location = "images/pets.zip"
    message, copy = copied_and_read(tmp_path, location)
    place = f"{location} (datasets.pets.data.source, read from its copy {copy})"
    assert_names_the_source(message, copy, place, said)
    assert message.endswith("; once the source is corrected, copy it again with dvc repro -f "
                            "download@pets (DVC does not watch the source), then run dvc repro")


@pytest.mark.hostile
@pytest.mark.parametrize("case", ["broken-image", "normalization"])
def test_a_message_about_an_archive_at_a_url_names_the_url_without_its_query(
    tmp_path, http_server, case
):
    files, said = CASES[case]
    data = zipped(files)
    (http_server.root / "pets.zip").write_bytes(data)
    url = f"{http_server.url}pets.zip?signature=s3cr3t"
    message, copy = copied_and_read(tmp_path, url, hashlib.sha256(data).hexdigest())
    place = (f"{http_server.url}pets.zip?… (datasets.pets.data.source, read from its download "
             f"{copy})")
    assert_names_the_source(message, copy, place, said)
    assert "s3cr3t" not in message
    assert message.endswith("; once the archive is corrected, put its new sha256 under "
                            "datasets.pets.data.sha256 in params.yaml and run dvc repro (the copy "
                            f"in {copy.parent} is replaced then)")


@pytest.mark.hostile
def test_a_missing_copy_says_to_run_the_download_first(tmp_path):
    source = ImageFolderSource("pets", "~/pets", None, None, None, 0.2, 0)
    with pytest.raises(DataFormatError, match=r"pets does not exist: the download stage copies "
                                              r"datasets\.pets\.data\.source there; run it first "
                                              r"\(dvc repro download@pets\)"):
        load_raw_dataset(source, tmp_path)


def test_a_location_read_directly_is_its_own_source():
    names = SourceNames.of(Path("some/folder"))
    assert names.place() == "some/folder" and names.after_correction() == ""
    assert SourceNames.of(names) is names


def test_a_source_path_that_does_not_print_is_quoted():
    source = ImageFolderSource("pets", "images/two\nlines", None, None, None, 0.2, 0)
    place = SourceNames(Path("data/raw/pets/two\nlines"), source).place()
    assert place.startswith("'images/two\\nlines' (datasets.pets.data.source")
