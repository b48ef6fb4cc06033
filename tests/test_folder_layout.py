"""The folder layout on in-memory listings: no files, no Pillow, just which path is what."""

from pathlib import Path

import pytest

from numpynet.data.formats.archive import ListedFile, Listing
from numpynet.data.formats.image_folder import find_samples, ignored_summary, labelled, may_be_image
from numpynet.errors import DataFormatError

HERE = Path("dataset")


def listing(*names: str, folders: tuple[str, ...] = ()) -> Listing:
    """A listing of ``names``; image bytes are irrelevant to the layout, so every source is b""."""
    files = [ListedFile(name, tuple(name.split("/")), b"") for name in names]
    return Listing(files, {tuple(folder.split("/")) for folder in folders})


def sample_names(samples) -> list[str]:
    return [f.name for _, f in samples]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("cat/1.png", True), ("cat/1.JPEG", True), ("cat/1.txt", False), ("cat/.1.png", False),
     (".cache/cat/1.png", False), ("__MACOSX/cat/1.png", False), ("1.webp", True)],
)
def test_may_be_image_looks_at_the_extension_and_hidden_parts(name, expected):
    assert may_be_image(tuple(name.split("/"))) is expected


def test_wrapping_folders_are_descended_down_to_the_split_folders():
    layout = find_samples(
        listing("outer/inner/train/dog/b.png", "outer/inner/train/cat/a.png",
                "outer/inner/test/cat/c.png", "outer/notes.md"),
        HERE,
    )
    assert layout.classes == ["cat", "dog"]
    assert sample_names(layout.train) == ["outer/inner/train/cat/a.png",
                                          "outer/inner/train/dog/b.png"]
    assert sample_names(layout.test) == ["outer/inner/test/cat/c.png"]
    assert layout.ignored == ["outer/notes.md"]


def test_a_lone_folder_holding_images_is_a_class_not_a_wrapper():
    with pytest.raises(DataFormatError, match=r"1 class folder \(cat\)"):
        find_samples(listing("cat/a.png", "cat/b.png"), HERE)


def test_without_split_folders_the_top_folders_are_classes_and_test_is_empty():
    layout = find_samples(listing("b/2.png", "a/1.png", "a/deep/3.png", "loose.png"), HERE)
    assert layout.classes == ["a", "b"] and layout.test == []
    assert sample_names(layout.train) == ["a/1.png", "b/2.png"]
    assert sorted(layout.ignored) == ["a/deep/3.png", "loose.png"]


def test_an_empty_class_folder_listed_only_as_a_folder_entry_is_named():
    with pytest.raises(DataFormatError, match="class folder 'c' holds no images"):
        find_samples(listing("a/1.png", "b/1.png", folders=("c",)), HERE)


def test_labels_index_the_sorted_classes():
    layout = find_samples(listing("b/2.png", "a/1.png", "c/3.png", "b/4.png"), HERE)
    files, labels = labelled(layout.train, layout.classes)
    assert [f.name for f in files] == ["a/1.png", "b/2.png", "b/4.png", "c/3.png"]
    assert labels.tolist() == [0, 1, 1, 2] and labels.dtype.name == "int64"


def test_ignored_summary_counts_and_names_the_first_sorted():
    assert ignored_summary(["z.txt"]) == (
        "ignored 1 file that is hidden, not an image, or outside a class folder (e.g. z.txt)"
    )
    assert ignored_summary(["z.txt", ".DS_Store"]).startswith("ignored 2 files that are hidden")
    assert ignored_summary(["z.txt", ".DS_Store"]).endswith("(e.g. .DS_Store)")
