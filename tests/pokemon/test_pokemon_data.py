import numpy as np
import pytest

from stages.common.io import DataError
from stages.pokemon import sprites
from stages.pokemon.data import N_COLORS, SEQ_LEN, mirror, read_colormap, read_pixels, render, split, write_pixels


def test_sample_sprites_are_in_the_course_format():
    pixels, palette = sprites.generate(50, seed=1)
    assert pixels.shape == (50, SEQ_LEN) and pixels.min() >= 0 and pixels.max() < N_COLORS
    assert palette.shape == (N_COLORS, 3) and palette.dtype == np.uint8
    assert palette[0].tolist() == [255, 255, 255]
    # a creature on a white background, never an empty image
    assert all(0.1 < (row != 0).mean() < 0.9 for row in pixels)
    again, _ = sprites.generate(50, seed=1)
    assert np.array_equal(pixels, again)


def test_render_maps_indices_and_pads_with_background():
    palette = sprites.palette()
    images = render(np.array([[5] * 240]), palette)
    assert images.shape == (1, 20, 20, 3)
    assert (images[0, :12] == palette[5]).all() and (images[0, 12:] == 255).all()


def test_mirror_reverses_each_row_of_pixels():
    pixels, palette = sprites.generate(3, seed=2)
    flipped = mirror(pixels)
    assert (render(flipped, palette) == render(pixels, palette)[:, :, ::-1]).all()
    assert (mirror(flipped) == pixels).all() and flipped.shape == pixels.shape


def test_split_by_line_order():
    parts = split(np.arange(792)[:, None].repeat(SEQ_LEN, 1))
    assert [len(parts[k]) for k in ("train", "dev", "test")] == [632, 80, 80]
    assert parts["dev"][0, 0] == 632 and parts["test"][0, 0] == 712


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        (" ".join(["1"] * 399), r"pixel_color.txt:3: expected 400 palette indices, found 399"),
        (" ".join(["1"] * 399 + ["167"]), r"pixel_color.txt:3: palette index 167 out of range \[0, 166\]"),
        (" ".join(["1"] * 399 + ["x"]), r"pixel_color.txt:3: non-integer"),
    ],
)
def test_bad_pixel_lines_name_file_and_line(tmp_path, bad_line, message):
    good = " ".join(["0"] * 400)
    path = write_lines(tmp_path / "pixel_color.txt", [good, good, bad_line])
    with pytest.raises(DataError, match=message):
        read_pixels(path, n_images=None)


def test_wrong_image_count(tmp_path):
    path = write_lines(tmp_path / "pixel_color.txt", [" ".join(["0"] * 400)])
    with pytest.raises(DataError, match="expected 792 images"):
        read_pixels(path)


@pytest.mark.parametrize(
    ("row", "message"),
    [("10 20", "colormap.txt:2: palette row must be 3 integers"), ("1 2 256", "0..255"), ("1 2 x", "non-integer")],
)
def test_bad_palette_rows(tmp_path, row, message):
    path = write_lines(tmp_path / "colormap.txt", ["255 255 255", row])
    with pytest.raises(DataError, match=message):
        read_colormap(path, n_colors=2)


def test_missing_files(tmp_path):
    with pytest.raises(DataError, match="colormap.txt: file not found"):
        read_colormap(tmp_path / "colormap.txt")
    with pytest.raises(DataError, match="pixel_color.txt: file not found"):
        read_pixels(tmp_path / "pixel_color.txt")


def test_write_read_round_trip(tmp_path):
    pixels, _ = sprites.generate(792)
    write_pixels(tmp_path / "p.txt", pixels)
    assert np.array_equal(read_pixels(tmp_path / "p.txt"), pixels)


def test_real_files(shared_data):
    folder = shared_data / "pokemon_hw4"
    if not folder.is_dir():
        pytest.skip(f"real data folder {folder} is absent")
    palette = read_colormap(folder / "colormap.txt")
    pixels = read_pixels(folder / "pixel_color.txt")
    assert palette.shape == (167, 3) and palette[0].tolist() == [255, 255, 255]
    assert pixels.shape == (792, 400)


def test_a_utf8_byte_order_mark_is_accepted(tmp_path):
    """Windows editors save UTF-8 with a BOM; both course files read the same with it."""
    pixels, palette = sprites.generate(3, seed=3)
    write_pixels(tmp_path / "pixel_color.txt", pixels)
    (tmp_path / "colormap.txt").write_text("\n".join(" ".join(map(str, rgb)) for rgb in palette.tolist()) + "\n")
    for name in ("pixel_color.txt", "colormap.txt"):
        path = tmp_path / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert np.array_equal(read_pixels(tmp_path / "pixel_color.txt", n_images=None), pixels)
    assert np.array_equal(read_colormap(tmp_path / "colormap.txt"), palette)
