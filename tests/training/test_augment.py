"""Augmentation: labels stay paired, draws come from the seed, shifts fill with 0, flips mirror."""

from __future__ import annotations

import numpy as np
import pytest

from numpynet.training.augment import (
    Augmentation,
    affine_field,
    displace,
    elastic_distort,
    flip_horizontally,
)


def numbered_images(count=64, height=8, width=8, channels=3):
    """Image i is filled with the value i + 1, so any pixel tells which input it came from."""
    values = np.arange(1, count + 1, dtype=np.float32)
    return np.broadcast_to(values[:, None, None, None], (count, height, width, channels)).copy()


def shifted(image, dy, dx):
    """``image`` (H, W, C) moved down by dy and right by dx, with 0 where nothing moved in."""
    height, width = image.shape[:2]
    out = np.zeros_like(image)
    for row in range(height):
        for col in range(width):
            if 0 <= row - dy < height and 0 <= col - dx < width:
                out[row, col] = image[row - dy, col - dx]
    return out


def random_images(count=32, seed=0):
    return np.random.default_rng(seed).standard_normal((count, 6, 7, 2)).astype(np.float32)


def test_nothing_to_do_returns_the_input_itself():
    images = random_images()
    assert Augmentation().is_identity
    assert Augmentation(0, False).apply(images, np.random.default_rng(0)) is images


@pytest.mark.parametrize("augmentation", [Augmentation(2, False), Augmentation(0, True),
                                          Augmentation(3, True)])
def test_shape_dtype_kept_and_input_untouched(augmentation):
    images = random_images()
    before = images.copy()
    out = augmentation.apply(images, np.random.default_rng(0))
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out is not images
    np.testing.assert_array_equal(images, before)


@pytest.mark.parametrize("augmentation", [Augmentation(2, True), Augmentation(0, True)])
def test_each_output_comes_from_the_image_at_its_own_position(augmentation):
    # Labels are gathered by the same index as the images, so the pairing holds only if image i
    # of the output is made from image i of the input, and from nothing else.
    images = numbered_images()
    out = augmentation.apply(images, np.random.default_rng(1))
    for i, image in enumerate(out):
        assert set(np.unique(image)) <= {0.0, i + 1.0}
        # A shift of at most 2 never uncovers the middle of an 8x8 image.
        assert image[3:5, 3:5].min() == i + 1


def test_every_shift_is_one_of_the_allowed_offsets_with_zero_fill():
    images = random_images(count=200)
    out = Augmentation(2, False).apply(images, np.random.default_rng(2))
    seen = set()
    for image, result in zip(images, out):
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if np.array_equal(result, shifted(image, dy, dx))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert len(seen) == 25  # 200 draws of 25 equally likely offsets reach all of them


def test_flip_without_shift_mirrors_about_half_the_images():
    images = random_images(count=400)
    out = Augmentation(0, True).apply(images, np.random.default_rng(3))
    mirrored = np.array([np.array_equal(o, i[:, ::-1]) for o, i in zip(out, images)])
    unchanged = np.array([np.array_equal(o, i) for o, i in zip(out, images)])
    assert np.all(mirrored ^ unchanged)
    assert 150 < mirrored.sum() < 250


def test_shift_and_flip_mirror_first_then_move():
    images = random_images(count=100)
    out = Augmentation(1, True).apply(images, np.random.default_rng(4))
    for image, result in zip(images, out):
        candidates = [shifted(view, dy, dx) for view in (image, image[:, ::-1])
                      for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        assert any(np.array_equal(result, c) for c in candidates)


def test_the_same_seed_gives_the_same_batch_and_another_seed_another():
    images = random_images()
    augmentation = Augmentation(2, True)
    first = augmentation.apply(images, np.random.default_rng(7))
    again = augmentation.apply(images, np.random.default_rng(7))
    other = augmentation.apply(images, np.random.default_rng(8))
    assert first.tobytes() == again.tobytes()
    assert first.tobytes() != other.tobytes()


def test_a_shift_as_large_as_the_image_leaves_only_the_fill_value():
    images = np.ones((50, 4, 4, 1), dtype=np.float32)
    out = Augmentation(4, False).apply(images, np.random.default_rng(5))
    # Some draw moves an image fully out of view: nothing but the 0 fill is left of it.
    assert any(not image.any() for image in out)
    assert set(np.unique(out)) <= {0.0, 1.0}


def test_flip_horizontally_mirrors_columns_and_keeps_channels_together():
    images = random_images()
    np.testing.assert_array_equal(flip_horizontally(images), images[:, :, ::-1])
    np.testing.assert_array_equal(flip_horizontally(flip_horizontally(images)), images)


def test_a_shift_uncovers_the_fill_value_of_each_channel():
    images = np.ones((100, 5, 5, 2), dtype=np.float32)
    out = Augmentation(2, False, fill=(-3.0, 7.0)).apply(images, np.random.default_rng(6))
    assert set(np.unique(out[..., 0])) == {-3.0, 1.0}
    assert set(np.unique(out[..., 1])) == {7.0, 1.0}


def test_elastic_distortion_of_strength_zero_is_the_identity():
    images = random_images()
    np.testing.assert_allclose(elastic_distort(images, 0.0, np.random.default_rng(0)), images,
                               atol=1e-6)


def test_elastic_distortion_keeps_a_blank_image_blank_and_each_image_its_own():
    rng = np.random.default_rng(9)
    blank = np.full((10, 12, 12, 1), -0.5, dtype=np.float32)
    np.testing.assert_allclose(elastic_distort(blank, 30.0, rng, fill=-0.5), blank, atol=1e-6)
    # Pixels are blends of the image's own values and the fill: never another image's.
    images = numbered_images(count=20, height=12, width=12, channels=1)
    out = elastic_distort(images, 30.0, rng, fill=0.0)
    assert np.all(out >= -1e-5)
    assert np.all(out <= np.arange(1, 21)[:, None, None, None] + 1e-4)


def test_elastic_distortion_moves_pixels_smoothly_and_by_the_seed():
    images = random_images(count=8)
    first = Augmentation(elastic=8.0).apply(images, np.random.default_rng(3))
    again = Augmentation(elastic=8.0).apply(images, np.random.default_rng(3))
    assert first.tobytes() == again.tobytes()
    assert not np.allclose(first, images, atol=1e-3)
    # A gentle field moves pixels by a fraction of a pixel: the result stays close to the input.
    gentle = elastic_distort(images, 0.5, np.random.default_rng(3))
    assert np.abs(gentle - images).mean() < 0.5 * np.abs(first - images).mean()


def reference_displace(images, field, fill):
    """Bilinear sampling one pixel at a time, written for clarity rather than speed."""
    count, height, width, channels = images.shape

    def pixel(i, y, x):
        inside = 0 <= y < height and 0 <= x < width
        return images[i, y, x] if inside else np.asarray(fill, dtype=np.float64)

    out = np.zeros(images.shape)
    for i in range(count):
        for y in range(height):
            for x in range(width):
                sy, sx = y + field[0, i, y, x], x + field[1, i, y, x]
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                dy, dx = sy - y0, sx - x0
                out[i, y, x] = ((1 - dy) * (1 - dx) * pixel(i, y0, x0)
                                + (1 - dy) * dx * pixel(i, y0, x0 + 1)
                                + dy * (1 - dx) * pixel(i, y0 + 1, x0)
                                + dy * dx * pixel(i, y0 + 1, x0 + 1))
    return out


def test_displace_matches_pixel_by_pixel_bilinear_sampling_with_a_per_channel_fill():
    rng = np.random.default_rng(10)
    images = rng.standard_normal((3, 5, 6, 2)).astype(np.float32)
    # Fractional moves, whole-pixel moves and moves far outside the image, rows unlike columns.
    field = rng.uniform(-3, 3, size=(2, 3, 5, 6))
    field[0, 0] = 0.5
    field[1, 0] = -1.0
    field[:, 1, 0, 0] = (-40.0, 25.0)
    fill = np.array([0.25, -2.0], dtype=np.float32)
    np.testing.assert_allclose(displace(images, field, fill),
                               reference_displace(images, field, fill), atol=1e-5)


def test_a_whole_pixel_displacement_is_a_shift():
    images = random_images(count=4)
    field = np.zeros((2, 4, 6, 7))
    field[0] = -1.0  # every pixel reads from the row above: the content moves down by one
    expected = np.stack([shifted(image, 1, 0) for image in images])
    np.testing.assert_allclose(displace(images, field), expected, atol=1e-6)


@pytest.mark.parametrize("max_shift", [6, 9])
def test_shifts_beyond_the_image_leave_only_fill(max_shift):
    images = np.ones((60, 4, 5, 1), dtype=np.float32)
    out = Augmentation(max_shift, fill=(-1.0,)).apply(images, np.random.default_rng(11))
    assert out.shape == images.shape
    assert set(np.unique(out)) <= {-1.0, 1.0}
    assert any((image == -1.0).all() for image in out)


def test_an_affine_field_of_no_turn_and_no_zoom_moves_nothing():
    field = affine_field((7, 9), np.zeros(3), np.ones(3))
    assert field.shape == (2, 3, 7, 9) and field.dtype == np.float32
    assert not field.any()
    images = np.random.default_rng(4).standard_normal((3, 7, 9, 2)).astype(np.float32)
    assert displace(images, field).tobytes() == images.tobytes()


def test_a_45_degree_turn_takes_the_top_right_to_the_top_counter_clockwise():
    # A point at (-2, +2) from the centre, turned 45 degrees counter-clockwise as seen, lands
    # at (-2 sqrt 2, 0): straight above the centre, 2.83 rows up.
    image = np.zeros((1, 9, 9, 1), dtype=np.float32)
    image[0, 2, 6, 0] = 1.0
    out = displace(image, affine_field((9, 9), 45.0, 1.0))[0, :, :, 0]
    row, col = np.unravel_index(out.argmax(), out.shape)
    assert (row, col) == (1, 4)
    # The mass lands around (4 - 2.83, 4) = (1.17, 4): mostly row 1, some row 2.
    assert out[1, 4] > 0.7 and out[2, 4] > 0.1
    assert out[:, :3].max() == 0 and out[:, 6:].max() == 0


def test_zooms_in_and_out_of_a_numbered_square_are_known_answers():
    # Zoom 2 about the centre of a 5x5 image: output pixel p reads the input at c + (p - c) / 2,
    # so the centre stays and the corner (0, 0) reads (1, 1).
    image = np.arange(25, dtype=np.float32).reshape(1, 5, 5, 1)
    out = displace(image, affine_field((5, 5), 0.0, 2.0))[0, :, :, 0]
    assert out[2, 2] == 12.0 and out[0, 0] == 6.0 and out[0, 4] == 8.0 and out[4, 2] == 17.0
    assert out[0, 1] == 6.5  # between input (1, 1) and (1, 2)
    # Zoom 1/2: output (1, 1) reads (0, 0); the corner reads outside, the fill.
    out = displace(image, affine_field((5, 5), 0.0, 0.5), fill=-1.0)[0, :, :, 0]
    assert out[1, 1] == 0.0 and out[2, 2] == 12.0 and out[0, 0] == -1.0


def test_a_turn_keeps_a_round_blob_at_the_centre_as_it_is():
    # A round, smooth blob about the centre is the same blob turned by any angle (up to the
    # error of bilinear sampling); zoomed, it is the blob of a scaled radius.
    size = 21
    y, x = np.mgrid[:size, :size] - (size - 1) / 2
    blob = np.exp(-(y * y + x * x) / 18).astype(np.float32)[None, :, :, None]
    turned = displace(np.repeat(blob, 3, axis=0),
                      affine_field((size, size), np.array([-30.0, 12.5, 45.0]), np.ones(3)))
    assert np.abs(turned - blob).max() < 0.03
    zoomed = displace(blob, affine_field((size, size), 17.0, 1.25))
    expected = np.exp(-(y * y + x * x) / (18 * 1.25**2))[None, :, :, None]
    assert np.abs(zoomed - expected).max() < 0.03


def test_rotations_and_zooms_draw_from_the_seed_after_the_shifts_and_nothing_when_off():
    images = random_images(count=16)
    augmentation = Augmentation(2, False, rotation=10.0, zoom=0.1)
    first = augmentation.apply(images, np.random.default_rng(5))
    assert first.tobytes() == augmentation.apply(images, np.random.default_rng(5)).tobytes()
    assert not np.allclose(first, Augmentation(2).apply(images, np.random.default_rng(5)))
    # Each image's angle, then its zoom, are drawn after the shifts (and flips): the generator
    # ends where these draws leave it, so the next batch draws what this order says.
    for rotation, zoom, draws in ((10.0, 0.1, 2), (10.0, 0.0, 1), (0.0, 0.1, 1), (0.0, 0.0, 0)):
        used, replay = np.random.default_rng(6), np.random.default_rng(6)
        Augmentation(2, rotation=rotation, zoom=zoom).apply(images, used)
        replay.integers(0, 5, size=(2, 16))
        for _ in range(draws):
            replay.random(16)
        assert used.integers(1 << 62) == replay.integers(1 << 62)


def test_a_turn_of_a_wide_image_keeps_rows_and_columns_apart():
    # On a 6 x 10 image, a point right of the centre turned 45 degrees counter-clockwise goes
    # up and to the right: rows and columns swapped would send it elsewhere.
    image = np.zeros((1, 6, 10, 1))
    centre_row, centre_col = 2.5, 4.5
    image[0, 2, 8, 0] = image[0, 3, 8, 0] = 1.0  # 3.5 columns right of the centre, on its row
    out = displace(image, affine_field((6, 10), 45.0, 1.0, np.float64))[0, :, :, 0]
    assert out.dtype == np.float64
    rows, cols = np.nonzero(out > 0.2)
    # 3.5 / sqrt(2) = 2.47 up and right of the centre: row 0.03, column 6.97.
    assert rows.max() <= 1 and cols.min() >= 6
    assert (rows.mean() - centre_row) < -1.5 and (cols.mean() - centre_col) > 1.5


@pytest.mark.parametrize("changes, problem", [
    ({"rotation": 46.0}, "rotation must be from 0 to 45 degrees"),
    ({"rotation": -1.0}, "rotation must be from 0 to 45 degrees"),
    ({"zoom": 1.0}, "zoom must be at least 0 and below 1"),
])
def test_angles_and_zooms_out_of_range_are_refused_at_once(changes, problem):
    with pytest.raises(ValueError, match=problem):
        Augmentation(**changes)


@pytest.mark.parametrize("angle", [45.0000001, -46.0])
def test_an_affine_field_refuses_turns_beyond_45_degrees(angle):
    with pytest.raises(ValueError, match="pi/4"):
        affine_field((4, 4), np.array([0.0, angle]), 1.0)


def test_a_turned_and_zoomed_image_is_made_of_its_own_pixels_and_the_fill():
    # Pixel (i, y, x) of image i holds i * 1000 + y * 12 + x + 1: each output pixel is a bilinear
    # blend of at most four neighbours of its own image (and the fill, 0), so it never exceeds
    # the largest of them, and the middle of each image, near its centre, stays close to it.
    count, size = 20, 12
    values = (np.arange(count)[:, None, None] * 1000 + np.arange(size)[:, None] * size
              + np.arange(size) + 1)
    images = values.astype(np.float32)[..., None]
    out = Augmentation(rotation=45.0, zoom=0.5, fill=(0.0,)).apply(images,
                                                                  np.random.default_rng(7))
    assert np.all(out >= 0)
    assert np.all(out <= images.max(axis=(1, 2, 3), keepdims=True) + 1e-3)
    own = out[:, 4:8, 4:8]
    assert np.all(own > np.arange(count)[:, None, None, None] * 1000)
    assert np.all(own < np.arange(count)[:, None, None, None] * 1000 + size * size + 1)
    assert not np.allclose(out, images)
