"""Reading users' image folders: layouts (on real files and on in-memory listings), archives,
modes and sizes, every malformed case (and hypothesis's), hostile archives (nothing may be
written), and the real CIFAR-10 JPEG tarball."""

from __future__ import annotations

import gzip
import io
import stat
import tarfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from helpers.project import SHARED_DATASETS, temporary_stage_project
from helpers.properties import EXAMPLES, IMAGES, IMAGE_PARAMS, mutated, preprocess, random_png
from helpers.stages import assert_refused
from numpynet.data.formats.archive import ListedFile, Listing, UnsafeArchiveError
from numpynet.data.formats.image_folder import (
    find_samples,
    ignored_summary,
    labelled,
    may_be_image,
    read_image_folder,
)
from numpynet.errors import DataFormatError


CIFAR_JPEG = SHARED_DATASETS / "cifar10-jpeg.tar.gz"
HEIGHT, WIDTH = 4, 5  # not square, so a height/width mix-up shows


# ---------------------------------------------------------------------------------------------
# Building datasets
# ---------------------------------------------------------------------------------------------


def write_images(root: Path, images: dict[str, np.ndarray]) -> None:
    """Save each (H, W) gray or (H, W, 3) RGB uint8 array as a PNG at its relative path."""
    for relative, pixels in images.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path, format="PNG")


def random_images(paths: list[str], seed: int = 0, gray: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shape = (HEIGHT, WIDTH) if gray else (HEIGHT, WIDTH, 3)
    return {p: rng.integers(0, 256, size=shape, dtype=np.uint8) for p in paths}


SPLIT_PATHS = [
    "train/cat/0.png", "train/cat/1.png", "train/cat/2.png",
    "train/dog/0.png", "train/dog/1.png", "train/dog/2.png",
    "test/cat/0.png", "test/dog/0.png", "test/dog/1.png",
]  # fmt: skip


def split_dataset(root: Path) -> dict[str, np.ndarray]:
    images = random_images(SPLIT_PATHS)
    write_images(root, images)
    return images


def pack(src: Path, archive: Path, prefix: str = "") -> Path:
    """Pack the tree under ``src`` (sorted, so the bytes are deterministic) into ``archive``."""
    paths = sorted(src.rglob("*"))
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive, "w") as zf:
            for path in paths:
                zf.write(path, prefix + path.relative_to(src).as_posix())
    else:
        with tarfile.open(archive, "w:gz" if archive.name.endswith("gz") else "w") as tar:
            for path in paths:
                tar.add(path, prefix + path.relative_to(src).as_posix(), recursive=False)
    return archive


def read(location: Path, **options) -> tuple:
    messages: list[str] = []
    dataset = read_image_folder(location, log=messages.append, **options)
    return dataset, messages


def assert_same_dataset(a, b) -> None:
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype
    assert a.classes == b.classes


def tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


# ---------------------------------------------------------------------------------------------
# Layouts and archives
# ---------------------------------------------------------------------------------------------


def test_train_and_test_folders_read_in_sorted_order(tmp_path):
    images = split_dataset(tmp_path / "data")
    dataset, messages = read(tmp_path / "data")
    assert dataset.classes == ["cat", "dog"]
    assert dataset.x_train.shape == (6, HEIGHT, WIDTH, 3) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (3, HEIGHT, WIDTH, 3)
    assert dataset.y_train.dtype == np.int64 and dataset.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert dataset.y_test.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(dataset.x_train, np.stack([images[p] for p in SPLIT_PATHS[:6]]))
    np.testing.assert_array_equal(dataset.x_test, np.stack([images[p] for p in SPLIT_PATHS[6:]]))
    assert messages == []


@pytest.mark.parametrize("archive_name", ["d.tar", "d.tar.gz", "d.tgz", "d.zip"])
@pytest.mark.parametrize("prefix", ["", "my-data/", "./"])
def test_archives_give_the_same_arrays_as_the_folder(tmp_path, archive_name, prefix):
    split_dataset(tmp_path / "data")
    archive = pack(tmp_path / "data", tmp_path / archive_name, prefix)
    before = tree(tmp_path)
    assert_same_dataset(read(archive)[0], read(tmp_path / "data")[0])
    assert tree(tmp_path) == before  # read in memory: nothing extracted


def test_wrapping_folders_are_descended(tmp_path):
    split_dataset(tmp_path / "outer" / "inner")
    (tmp_path / "outer" / "README.txt").write_text("not an image, does not stop the descent")
    wrapped, messages = read(tmp_path / "outer")
    assert_same_dataset(wrapped, read(tmp_path / "outer" / "inner")[0])
    assert messages == ["ignored 1 file that is hidden, not an image, or outside a class folder "
                        "(e.g. README.txt)"]


def class_folders(root: Path, counts: dict[str, int]) -> None:
    """Gray images whose constant value is a unique id: 10 * class index + image index."""
    images = {}
    for c, (name, count) in enumerate(counts.items()):
        for k in range(count):
            images[f"{name}/{k:02d}.png"] = np.full((HEIGHT, WIDTH), 10 * c + k, dtype=np.uint8)
    write_images(root, images)


def ids(x: np.ndarray) -> list[int]:
    return x[:, 0, 0, 0].tolist()


def test_without_split_folders_a_stratified_test_split_is_carved_off(tmp_path):
    class_folders(tmp_path, {"a": 10, "b": 10, "c": 5})
    dataset, _ = read(tmp_path, test_fraction=0.2, seed=0)
    assert dataset.classes == ["a", "b", "c"]
    assert np.bincount(dataset.y_test).tolist() == [2, 2, 1]
    assert np.bincount(dataset.y_train).tolist() == [8, 8, 4]
    # Every image lands in exactly one split, with its own label, in sorted order.
    all_ids = ids(dataset.x_train) + ids(dataset.x_test)
    assert sorted(all_ids) == [10 * c + k for c, n in enumerate([10, 10, 5]) for k in range(n)]
    assert ids(dataset.x_train) == sorted(ids(dataset.x_train))
    np.testing.assert_array_equal(np.array(ids(dataset.x_test)) // 10, dataset.y_test)

    assert_same_dataset(read(tmp_path, test_fraction=0.2, seed=0)[0], dataset)
    other = read(tmp_path, test_fraction=0.2, seed=1)[0]
    assert ids(other.x_test) != ids(dataset.x_test)
    assert len(read(tmp_path, test_fraction=0.5)[0].y_test) == 5 + 5 + 2


def test_train_without_test_folder_carves_the_test_split_off_train(tmp_path):
    class_folders(tmp_path / "train", {"a": 10, "b": 10})
    dataset, _ = read(tmp_path, test_fraction=0.3, seed=3)
    assert np.bincount(dataset.y_test).tolist() == [3, 3]
    assert len(dataset.y_train) == 14


# ---------------------------------------------------------------------------------------------
# Modes, pixel values and sizes
# ---------------------------------------------------------------------------------------------


def test_pixels_come_back_exactly_in_nhwc_order(tmp_path):
    pixels = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    pixels[0, 0] = [255, 0, 0]  # red at row 0, column 0
    pixels[0, 1] = [0, 255, 0]  # green at row 0, column 1
    pixels[1, 0] = [0, 0, 255]  # blue at row 1, column 0
    write_images(tmp_path, {"a/x.png": pixels, "b/x.png": pixels, "b/y.png": pixels})
    x = read(tmp_path)[0].x_train
    assert x.shape == (2, HEIGHT, WIDTH, 3)
    assert x[0, 0, 0].tolist() == [255, 0, 0]
    assert x[0, 0, 1].tolist() == [0, 255, 0]
    assert x[0, 1, 0].tolist() == [0, 0, 255]
    np.testing.assert_array_equal(x[0], pixels)


def test_grayscale_images_give_one_channel(tmp_path):
    images = random_images(SPLIT_PATHS, gray=True)
    write_images(tmp_path, images)
    dataset, _ = read(tmp_path)
    assert dataset.x_train.shape == (6, HEIGHT, WIDTH, 1)
    expected = np.stack([images[p] for p in SPLIT_PATHS[:6]])
    np.testing.assert_array_equal(dataset.x_train[..., 0], expected)


@pytest.mark.parametrize("color_path", ["train/dog/2.png", "test/dog/1.png", "train/cat/0.png"])
def test_one_color_image_makes_the_whole_dataset_rgb(tmp_path, color_path):
    images = random_images(SPLIT_PATHS, gray=True)
    images[color_path] = random_images([color_path], seed=7)[color_path]
    write_images(tmp_path, images)
    dataset, _ = read(tmp_path)
    assert dataset.x_train.shape[-1] == dataset.x_test.shape[-1] == 3
    every = np.concatenate([dataset.x_train, dataset.x_test])
    for index, path in enumerate(SPLIT_PATHS):
        expected = images[path] if path == color_path else np.repeat(images[path][..., None], 3, -1)
        np.testing.assert_array_equal(every[index], expected)


def test_mode_l_converts_color_to_gray_as_pillow_does(tmp_path):
    images = random_images(SPLIT_PATHS)
    images["train/cat/0.png"][0, 0] = [255, 0, 0]
    write_images(tmp_path, images)
    dataset, _ = read(tmp_path, mode="L")
    assert dataset.x_train.shape == (6, HEIGHT, WIDTH, 1)
    assert dataset.x_train[0, 0, 0, 0] == 76  # ITU-R 601-2 luma of pure red: 0.299 * 255
    expected = np.asarray(Image.fromarray(images["train/cat/0.png"]).convert("L"))
    np.testing.assert_array_equal(dataset.x_train[0, ..., 0], expected)


def test_mode_rgb_on_gray_images_repeats_the_channel(tmp_path):
    images = random_images(SPLIT_PATHS, gray=True)
    write_images(tmp_path, images)
    x = read(tmp_path, mode="RGB")[0].x_train
    np.testing.assert_array_equal(x, np.repeat(x[..., :1], 3, axis=-1))
    np.testing.assert_array_equal(x[0, ..., 0], images[SPLIT_PATHS[0]])


def test_alpha_and_palette_images_are_converted(tmp_path):
    rgba = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 17  # translucent red: the alpha channel is dropped
    write_images(tmp_path, {"a/rgba.png": rgba, "a/rgba2.png": rgba})
    (tmp_path / "b").mkdir()
    blue = Image.fromarray(np.full((HEIGHT, WIDTH, 3), [0, 0, 200], np.uint8))
    for name in ("p.gif", "p2.gif"):
        blue.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "b" / name)
    dataset, _ = read(tmp_path, test_fraction=0.5)
    every = np.concatenate([dataset.x_train, dataset.x_test])
    labels = np.concatenate([dataset.y_train, dataset.y_test])
    assert every.shape == (4, HEIGHT, WIDTH, 3)
    assert (every[labels == 0] == [200, 0, 0]).all() and (every[labels == 1] == [0, 0, 200]).all()


def test_mixed_sizes_without_a_declared_size_name_the_odd_file(tmp_path):
    images = random_images(SPLIT_PATHS)
    images["train/dog/1.png"] = np.zeros((HEIGHT + 2, WIDTH, 3), dtype=np.uint8)
    write_images(tmp_path, images)
    with pytest.raises(DataFormatError) as error:
        read(tmp_path)
    message = str(error.value)
    assert "train/dog/1.png" in message and f"{HEIGHT + 2}x{WIDTH}" in message
    assert f"{HEIGHT}x{WIDTH}" in message and "declare a size" in message


def test_declared_size_resizes_every_image(tmp_path):
    images = {p: np.full((HEIGHT + i, WIDTH + 2 * i, 3), [10 * i, 100, 200], np.uint8)
              for i, p in enumerate(SPLIT_PATHS)}
    write_images(tmp_path, images)
    dataset, _ = read(tmp_path, size=(6, 3))
    assert dataset.x_train.shape == (6, 6, 3, 3) and dataset.x_test.shape == (3, 6, 3, 3)
    # A constant image stays the same constant under bilinear resampling.
    assert dataset.x_test[2, 5, 2].tolist() == [80, 100, 200]
    assert read(tmp_path, size=[6, 3])[0].x_train.shape == (6, 6, 3, 3)  # a list from YAML


# ---------------------------------------------------------------------------------------------
# JPEG files that repeat one header (decoded without parsing it again)
# ---------------------------------------------------------------------------------------------

# Encoder settings, each giving headers of its own: one shared by all the files of a kind, or
# (with Huffman tables fitted to each image) one per file.
JPEG_KINDS = {
    "plain": {},
    "progressive": {"progressive": True},  # fitted tables
    "subsampling-444": {"subsampling": 0},
    "optimized": {"optimize": True},  # fitted tables
    "gray": {},
    "cmyk": {},
}


def jpeg_dataset(root: Path) -> list[str]:
    """Write JPEGs of every kind under train/<kind>/ (test/ split: plain ones); return paths."""
    rng = np.random.default_rng(11)
    paths = []
    for split, kinds, count in (("train", JPEG_KINDS, 4), ("test", ["plain", "gray"], 2)):
        for kind in kinds:
            for k in range(count):
                pixels = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
                image = Image.fromarray(pixels)
                if kind in ("gray", "cmyk"):
                    image = image.convert("L" if kind == "gray" else "CMYK")
                path = root / split / kind / f"{k}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                image.save(path, format="JPEG", quality=75, **JPEG_KINDS[kind])
                paths.append(path.relative_to(root).as_posix())
    return sorted(paths, key=lambda p: (not p.startswith("train"), p))


def test_jpegs_repeating_a_header_decode_as_pillow_decodes_each(tmp_path):
    paths = jpeg_dataset(tmp_path / "data")
    archive = pack(tmp_path / "data", tmp_path / "d.tar.gz")
    dataset, _ = read(archive)
    expected = np.stack([np.asarray(Image.open(tmp_path / "data" / p).convert("RGB"))
                         for p in paths])
    np.testing.assert_array_equal(np.concatenate([dataset.x_train, dataset.x_test]), expected)
    assert_same_dataset(dataset, read(tmp_path / "data")[0])  # files on disk: Pillow's own path
    gray = read(archive, mode="L")[0]
    assert_same_dataset(gray, read(tmp_path / "data", mode="L")[0])


def test_a_repeated_jpeg_header_is_parsed_once(tmp_path, monkeypatch):
    jpeg_dataset(tmp_path / "data")
    archive = pack(tmp_path / "data", tmp_path / "d.zip")
    opened = []
    real_open = Image.open
    monkeypatch.setattr(Image, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    dataset, _ = read(archive)
    files = len(dataset.x_train) + len(dataset.x_test)
    # Opened: the first plain, gray, CMYK and 4:4:4 files, and all 8 with fitted tables.
    assert (files, len(opened)) == (28, 4 + 8)


def test_a_truncated_jpeg_with_a_known_header_is_named_as_pillow_names_it(tmp_path):
    jpeg_dataset(tmp_path / "data")
    broken = tmp_path / "data" / "train" / "plain" / "3.jpg"
    whole = broken.read_bytes()
    broken.write_bytes(whole[: len(whole) - 40])  # the header read before, the scan cut short
    for location in (tmp_path / "data", pack(tmp_path / "data", tmp_path / "d.tar")):
        with pytest.raises(DataFormatError, match=r"train/plain/3\.jpg.*truncated.*remove or fix"):
            read(location)


# ---------------------------------------------------------------------------------------------
# Bad files and stray files
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"this is not a png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_an_undecodable_image_is_named(tmp_path, content):
    split_dataset(tmp_path / "data")
    (tmp_path / "data" / "train" / "dog" / "broken.png").write_bytes(content)
    for location in (tmp_path / "data", pack(tmp_path / "data", tmp_path / "d.zip")):
        with pytest.raises(DataFormatError, match=r"train/dog/broken\.png.*remove or fix"):
            read(location)


def test_a_truncated_image_is_named(tmp_path):
    split_dataset(tmp_path)
    whole = (tmp_path / "test" / "cat" / "0.png").read_bytes()
    (tmp_path / "test" / "cat" / "0.png").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match=r"test/cat/0\.png"):
        read(tmp_path)


def test_stray_and_hidden_files_are_ignored_and_counted(tmp_path):
    clean = tmp_path / "clean"
    split_dataset(clean)
    messy = tmp_path / "messy"
    split_dataset(messy)
    (messy / "train" / "cat" / "notes.txt").write_text("a cat")
    (messy / "train" / "cat" / ".DS_Store").write_bytes(b"\x00\x01")
    (messy / ".DS_Store").write_bytes(b"\x00")
    (messy / "train" / "cat" / "._0.png").write_bytes(b"AppleDouble")  # hidden, despite .png
    (messy / "__MACOSX" / "train").mkdir(parents=True)
    (messy / "__MACOSX" / "train" / "x.png").write_bytes(b"resource fork")
    (messy / ".ipynb_checkpoints").mkdir()  # a hidden folder is not a class folder
    write_images(messy, {"train/loose.png": np.zeros((HEIGHT, WIDTH, 3), np.uint8),
                         "train/cat/nested/deep.png": np.zeros((HEIGHT, WIDTH, 3), np.uint8)})
    for location in (messy, pack(messy, tmp_path / "messy.tar.gz")):
        dataset, messages = read(location)
        assert_same_dataset(dataset, read(clean)[0])
        assert messages == ["ignored 7 files that are hidden, not images, or outside a class "
                            "folder (e.g. .DS_Store)"]


def test_default_log_goes_to_stderr(tmp_path, capsys):
    split_dataset(tmp_path)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("a cat")
    read_image_folder(tmp_path)
    assert "ignored 1 file" in capsys.readouterr().err


@pytest.mark.parametrize("zipped", [False, True])
def test_an_empty_class_folder_is_named(tmp_path, zipped):
    split_dataset(tmp_path / "data")
    (tmp_path / "data" / "train" / "bird").mkdir()
    (tmp_path / "data" / "train" / "bird" / "notes.txt").write_text("no images here")
    location = pack(tmp_path / "data", tmp_path / "d.zip") if zipped else tmp_path / "data"
    with pytest.raises(DataFormatError, match=r"class folder 'train/bird' holds no images"):
        read(location)


def test_an_empty_class_folder_without_splits_is_named(tmp_path):
    class_folders(tmp_path, {"a": 3, "b": 3})
    (tmp_path / "c").mkdir()
    with pytest.raises(DataFormatError, match=r"class folder 'c'"):
        read(tmp_path)


def test_a_test_class_missing_from_train_is_rejected(tmp_path):
    split_dataset(tmp_path)
    write_images(tmp_path, random_images(["test/bird/0.png"]))
    with pytest.raises(DataFormatError, match=r"class folder 'test/bird' has no counterpart"):
        read(tmp_path)


def test_a_train_class_missing_from_test_is_fine(tmp_path):
    split_dataset(tmp_path)
    write_images(tmp_path, random_images(["train/bird/0.png"]))
    dataset, _ = read(tmp_path)
    assert dataset.classes == ["bird", "cat", "dog"] and 0 not in dataset.y_test


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        ([], "no class folders with images"),
        (["a.png", "b.png"], "no class folders with images"),
        (["cat/0.png", "cat/1.png"], "1 class folder .cat.; a classifier needs at least 2"),
        (["train/cat/0.png", "train/cat/1.png"], "needs at least 2"),
        (["test/cat/0.png", "test/dog/0.png"], "no 'train' folder"),
        (["train/cat/0.png", "train/dog/0.png", "val/cat/0.png"],
         "found val/, named like split folders: .* Move the images in val/<class>/ into "
         "train/<class>/"),
        (["train/cat/0.png", "train/dog/0.png", "test/0.png"], "'test' has no class folders"),
    ],
)
def test_layouts_that_cannot_be_read_are_explained(tmp_path, paths, expected):
    (tmp_path / "d").mkdir()
    write_images(tmp_path / "d", random_images(paths))
    with pytest.raises(DataFormatError, match=expected):
        read(tmp_path / "d")


def test_a_bad_location_is_explained(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        read(tmp_path / "nowhere")
    (tmp_path / "d.rar").write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(DataFormatError, match="d.rar is a RAR archive: preprocess reads a folder, "
                                              "a zip, or a tar"):
        read(tmp_path / "d.rar")
    # Whatever their names say, the bytes are no archive (test_archive_kind.py has the rest).
    for name in ("d.tar.gz", "d.zip", "d.tar"):
        (tmp_path / name).write_bytes(b"garbage, not an archive" * 40)
        with pytest.raises(DataFormatError, match="no archive format preprocess reads .it starts "
                                                  "with the text 'garbage,'."):
            read(tmp_path / name)


def test_a_truncated_archive_is_explained(tmp_path):
    split_dataset(tmp_path / "data")
    whole = pack(tmp_path / "data", tmp_path / "d.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataFormatError, match="corrupt or truncated"):
        read(tmp_path / "cut.tar.gz")


# ---------------------------------------------------------------------------------------------
# Hostile archives: rejected, naming the member, and nothing written anywhere
# ---------------------------------------------------------------------------------------------

def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


PNG_BYTES = png_bytes()
BENIGN = ["train/cat/0.png", "train/dog/0.png", "test/cat/0.png", "test/dog/0.png"]
SYMLINK, HARDLINK = tarfile.SYMTYPE, tarfile.LNKTYPE
FIFO, DEVICE = tarfile.FIFOTYPE, tarfile.CHRTYPE
WORK = "{work}"  # replaced by the test's scratch folder: an absolute path that is safe to check
EVIL = "train/cat/evil.png"

# case -> (archive suffix, member name, tar member type or None, link target, why it is rejected)
HOSTILE = {
    "tar ..": (".tar.gz", "../evil.png", None, "", "'..'"),
    "tar nested ..": (".tgz", "train/cat/../../../evil.png", None, "", "'..'"),
    "tar absolute": (".tar", WORK + "/abs/evil.png", None, "", "absolute"),
    "tar symlink": (".tar.gz", EVIL, SYMLINK, "../../../evil.png", "symbolic link"),
    "tar folder symlink": (".tar.gz", "train/evil", SYMLINK, WORK, "symbolic link"),
    "tar hardlink": (".tar.gz", EVIL, HARDLINK, "/etc/passwd", "hard link"),
    "tar fifo": (".tar.gz", EVIL, FIFO, "", "device or FIFO"),
    "tar device": (".tar.gz", EVIL, DEVICE, "", "device or FIFO"),
    "zip ..": (".zip", "../evil.png", None, "", "'..'"),
    "zip backslash ..": (".zip", "..\\evil.png", None, "", "'..'"),
    "zip absolute": (".zip", WORK + "/abs/evil.png", None, "", "absolute"),
    "zip symlink": (".zip", EVIL, SYMLINK, "../../../evil.png", "symbolic link"),
}


def add_tar_member(tar: tarfile.TarFile, name: str, kind: bytes | None, link: str) -> None:
    info = tarfile.TarInfo(name)
    if kind is None:
        info.size = len(PNG_BYTES)
        tar.addfile(info, io.BytesIO(PNG_BYTES))
    else:
        info.type, info.linkname = kind, link
        tar.addfile(info)


def add_zip_member(zf: zipfile.ZipFile, name: str, kind: bytes | None, link: str) -> None:
    info = zipfile.ZipInfo(name)
    if kind == SYMLINK:  # Unix zip tools keep the file type in the high external attribute bits
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
    zf.writestr(info, link.encode() if kind == SYMLINK else PNG_BYTES)


def hostile_archive(path: Path, member: str, kind: bytes | None, link: str) -> Path:
    """Benign members, the hostile one, one more benign: an extractor that checked as it went
    would have written files before meeting the hostile member."""
    names = BENIGN + [member, "train/cat/after.png"]
    kinds = [None] * len(BENIGN) + [kind, None]
    links = [""] * len(BENIGN) + [link, ""]
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as zf:
            for args in zip(names, kinds, links):
                add_zip_member(zf, *args)
    else:
        with tarfile.open(path, "w:gz" if path.name.endswith("gz") else "w") as tar:
            for args in zip(names, kinds, links):
                add_tar_member(tar, *args)
    return path


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile_archives_are_rejected_and_nothing_is_written(tmp_path, case):
    # The archive sits deep in tmp_path, so that any escape (up to three levels of "..", or the
    # absolute path) would still land inside tmp_path, where it is looked for.
    work = tmp_path / "work"
    work.mkdir()
    suffix, member, kind, link, reason = HOSTILE[case]
    member, link = member.replace(WORK, str(work)), link.replace(WORK, str(work))
    archive = hostile_archive(work / f"hostile{suffix}", member, kind, link)
    before = tree(tmp_path)
    with pytest.raises(UnsafeArchiveError) as error:
        read(archive)
    assert repr(member) in str(error.value) and reason in str(error.value)
    assert isinstance(error.value, DataFormatError)
    # Read in memory: nothing appeared anywhere, not even the benign members before it.
    assert tree(tmp_path) == before
    assert not any(p.name.startswith("evil") for p in tmp_path.rglob("*"))


# ---------------------------------------------------------------------------------------------
# The folder layout on in-memory listings: no files, no Pillow, just which path is what
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Malformed images, as the preprocess stage meets them (hypothesis)
# ---------------------------------------------------------------------------------------------


@st.composite
def broken_image(draw):
    """One image of the folder damaged, replaced by another kind of file, or of another size."""
    name = draw(st.sampled_from(sorted(IMAGES)))
    how = draw(st.sampled_from(["bytes", "other_size", "gzip", "text"]))
    unreadable = how in ("gzip", "text")
    if how == "bytes":
        # The PNG signature and header chunk come first: overwriting them often.
        content, unreadable = mutated(IMAGES[name], draw, header_bytes=33)
    elif how == "other_size":
        side = draw(st.integers(1, 12))
        content = random_png(99, draw(st.sampled_from(["RGB", "L"])), side=side)
        unreadable = side != 8
    elif how == "gzip":
        content = gzip.compress(IMAGES[name], mtime=0)
    else:
        content = draw(st.text(max_size=40)).encode()
    return name, content, unreadable


@pytest.mark.hostile
@EXAMPLES
@given(broken_image())
def test_malformed_images_pass_or_are_refused_naming_the_image(edit):
    name, content, unreadable = edit
    with temporary_stage_project() as project:
        folder = project / "data" / "raw" / "pics" / "images"
        for member, data in IMAGES.items():
            (folder / member).parent.mkdir(parents=True, exist_ok=True)
            (folder / member).write_bytes(content if member == name else data)
        code, stderr, out = preprocess(project, "pics", IMAGE_PARAMS)
        if code != 0 or unreadable:
            assert_refused(code, stderr, name, output=out)
        else:
            assert (out / "meta.json").is_file()


# ---------------------------------------------------------------------------------------------
# Real data
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not CIFAR_JPEG.is_file(), reason=f"CIFAR-10 JPEG tarball absent: {CIFAR_JPEG}")
def test_real_cifar10_jpeg_tarball():
    start = time.perf_counter()
    dataset, messages = read(CIFAR_JPEG)
    seconds = time.perf_counter() - start
    print(f"decoded {CIFAR_JPEG.name} in {seconds:.1f} s")
    assert dataset.x_train.shape == (50000, 32, 32, 3) and dataset.x_train.dtype == np.uint8
    assert dataset.x_test.shape == (10000, 32, 32, 3) and dataset.x_test.dtype == np.uint8
    assert dataset.classes == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                               "horse", "ship", "truck"]
    assert np.bincount(dataset.y_train).tolist() == [5000] * 10
    assert np.bincount(dataset.y_test).tolist() == [1000] * 10
    assert messages == []
    # Real photographs, not blank decodes: every image has some contrast.
    assert (dataset.x_test.reshape(10000, -1).std(axis=1) > 1).all()
    assert seconds < 120, f"decoding took {seconds:.0f} s"


# ---------------------------------------------------------------------------------------------
# Split folders spelled otherwise: Train/, TEST/, val/ (refused, saying how to name them)
# ---------------------------------------------------------------------------------------------


def split_paths(*splits: str) -> list[str]:
    return [f"{split}/{label}/{k}.png" for split in splits for label in ("cat", "dog")
            for k in range(3)]


@pytest.mark.hostile
@pytest.mark.parametrize(("splits", "said"), [
    (("Train", "Test"), "found Train/ and Test/, named like split folders: preprocess reads "
                        "train/ and test/ alone as splits, by these exact lowercase names"),
    (("TRAIN", "TEST"), "Rename TRAIN/ to train/ and rename TEST/ to test/"),
    (("Train", "Test", "Validation"),
     "Rename Train/ to train/, rename Test/ to test/ and move the images in Validation/<class>/ "
     "into train/<class>/ (the validation split is carved off the training images) and remove "
     "Validation/"),
    (("train", "Test"), "Rename Test/ to test/"),
    (("train", "Val"), "found Val/, named"),
    (("Train",), "Rename Train/ to train/"),
    (("Test",), "Rename Test/ to test/ and add a train/ folder beside test/"),
    (("train", "Train"), "Merge Train/ into the train/ beside it"),
    (("cat", "dog", "val"), "Move the images in val/<class>/ into <class>/ beside it"),
], ids=["Train-Test", "TRAIN-TEST", "with-Validation", "train-Test", "train-Val", "Train-alone",
        "Test-alone", "train-and-Train", "classes-and-val"])
def test_split_folders_spelled_otherwise_are_refused_saying_how_to_name_them(tmp_path, splits,
                                                                             said):
    # Before: "class folder 'Test' holds no images directly", or Test/ alone taken for a
    # wrapper and trained on.
    if "cat" in splits:  # no split folders: classes, and a validation folder of the same classes
        paths = [f"{label}/{k}.png" for label in ("cat", "dog") for k in range(3)]
        write_images(tmp_path / "d", random_images(paths + split_paths("val")))
    else:
        write_images(tmp_path / "d", random_images(split_paths(*splits)))
    with pytest.raises(DataFormatError) as refused:
        read(tmp_path / "d")
    message = str(refused.value)
    assert said in message and "holding no images; nothing was decoded" in message, message
    # The fix the message gives reads: the same images under the documented names.
    fixed = {"train": "train", "test": "test"}
    renamed = ["train"] + [fixed.get(split.lower(), "train") for split in splits
                           if split not in ("cat", "dog")]
    write_images(tmp_path / "fixed", random_images(split_paths(*dict.fromkeys(renamed))))
    assert read(tmp_path / "fixed")[0].classes == ["cat", "dog"]


@pytest.mark.hostile
def test_a_class_named_like_a_split_that_holds_images_stays_a_class(tmp_path):
    # A dataset of vehicles: Train/ holds images itself, so it is a class, as before.
    write_images(tmp_path / "d", random_images([f"{label}/{k}.png" for label in ("Train", "Bus")
                                                for k in range(3)]))
    assert read(tmp_path / "d")[0].classes == ["Bus", "Train"]


@pytest.mark.hostile
@EXAMPLES
@given(word=st.sampled_from(["train", "test", "val", "valid", "validation"]),
       upper=st.lists(st.booleans(), min_size=10, max_size=10))
def test_any_spelling_of_a_split_but_train_and_test_is_refused_by_name(word, upper):
    spelled = "".join(c.upper() if up else c for c, up in zip(word, upper))
    names = [f"{spelled}/cat/0.png", f"{spelled}/dog/0.png", "train/cat/1.png",
             "train/dog/1.png"] if spelled != "train" else ["train/cat/0.png", "train/dog/0.png"]
    if spelled in ("train", "test"):
        find_samples(listing(*names), HERE)  # the documented names: no refusal about them
        return
    with pytest.raises(DataFormatError, match=f"found {spelled}/, named like split folders: .*"
                                              f"would take it for a class"):
        find_samples(listing(*names), HERE)
