"""ddpm's readers against bad and unusual input: symlinks in a `dir:` source, image modes, decompression bombs,
a text file named images.zip, size bounds, and CelebA's aligned images (the real files where present)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny import COMMON, ROOT, tiny_task

from stages.common import cli
from stages.common.params import ParamsError
from stages.ddpm import config, download, prepare
from stages.ddpm.images import CELEBA_ALIGNED, archive_names, celeba_crop

CELEBA = ROOT.parent / "shared" / "data" / "celeba_10k" / "img_align_celeba"


@pytest.fixture
def tiny(tmp_path):
    return tiny_task("ddpm", config.DdpmParams), config.Paths(tmp_path / "repo")


def run_main(stage, p, paths, capsys) -> str:
    """Run `stage` as its __main__ does; it must exit 1 with one `error:` line, the last on stderr (progress
    bars may come before it), which is returned."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(lambda: stage.run(p, COMMON, paths))
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if line.startswith("error: ")] == err[-1:] and "Traceback" not in str(err), err
    return err[-1]


def faces(folder: Path, n: int = 3, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(len(str(folder)))
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"face{i}.png")
    return folder


def bomb_png() -> bytes:
    """A PNG whose header claims 30000×30000 pixels: over PIL's decompression-bomb limit."""
    buffer = io.BytesIO()
    Image.new("L", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = struct.pack(">II", 30000, 30000)  # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # IHDR's CRC over type + data
    return bytes(data)


# --- symlinks in a dir: source -----------------------------------------------------------------


def test_a_symlink_to_a_file_outside_the_source_is_refused(tiny, tmp_path, capsys):
    p, paths = tiny
    src = faces(tmp_path / "src")
    secret = faces(tmp_path / "elsewhere", n=1) / "face0.png"
    (src / "link.png").symlink_to(secret)
    p.data.source = f"dir:{src}"
    line = run_main(download, p, paths, capsys)
    assert line.startswith(f"error: {src / 'link.png'}: a symlink to {secret}, outside the source folder")
    assert not paths.raw.exists()


def test_a_symlinked_folder_inside_the_source_is_followed_one_outside_refused(tiny, tmp_path, capsys):
    p, paths = tiny
    src = faces(tmp_path / "src")
    faces(src / "real", n=2)
    (src / "alias").symlink_to(src / "real", target_is_directory=True)
    p.data.source = f"dir:{src}"
    assert download.run(p, COMMON, paths)["images"] == 3 + 2 + 2
    names = archive_names(paths.raw / config.RAW_ARCHIVE)
    assert "alias__face0.png" in names and "real__face0.png" in names
    before = (paths.raw / config.RAW_ARCHIVE).read_bytes()
    (src / "out").symlink_to(faces(tmp_path / "other", n=2), target_is_directory=True)
    line = run_main(download, p, paths, capsys)
    assert line.startswith(f"error: {src / 'out'}: a symlink to ") and "outside the source folder" in line
    assert (paths.raw / config.RAW_ARCHIVE).read_bytes() == before, "the earlier output is untouched"


# --- image modes and bombs ---------------------------------------------------------------------


def mode_images(folder: Path) -> dict[str, tuple[int, int, int]]:
    """One 16×16 image per awkward mode, and the RGB each must decode to."""
    folder.mkdir(parents=True)
    Image.fromarray(np.full((16, 16), round(0.46 * 65535), np.uint16)).save(folder / "a_grey16.png")
    palette = Image.new("P", (16, 16), 1)
    palette.putpalette([0, 0, 0, 200, 30, 30] + [0] * 762)
    palette.save(folder / "b_palette.png")
    Image.new("RGBA", (16, 16), (10, 200, 10, 0)).save(folder / "c_transparent.png")
    Image.new("LA", (16, 16), (0, 255)).save(folder / "d_grey_alpha.png")
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(folder / "e_cmyk.jpg", quality=100)
    Image.new("1", (16, 16), 1).save(folder / "f_bilevel.png")
    return {"a": (117, 117, 117), "b": (200, 30, 30), "c": (255, 255, 255), "d": (0, 0, 0), "e": (255, 0, 0),
            "f": (255, 255, 255)}  # fmt: skip


def test_every_image_mode_decodes_to_the_right_colour(tiny, tmp_path):
    p, paths = tiny
    expected = mode_images(tmp_path / "src")
    p.data.source = f"dir:{tmp_path / 'src'}"
    assert download.run(p, COMMON, paths)["images"] == len(expected)
    prepare.run(p, COMMON, paths)
    images = np.load(paths.prepared / "images.npy")
    assert images.shape == (len(expected), 16, 16, 3)
    for image, (key, rgb) in zip(images, sorted(expected.items()), strict=True):
        assert np.abs(image.astype(int) - rgb).max() <= 3, (key, image[0, 0], rgb)


def test_a_decompression_bomb_in_the_source_is_one_error_naming_it(tiny, tmp_path, capsys):
    p, paths = tiny
    src = faces(tmp_path / "src")
    (src / "huge.png").write_bytes(bomb_png())
    p.data.source = f"dir:{src}"
    line = run_main(download, p, paths, capsys)
    assert line.startswith(f"error: {src / 'huge.png'}: image too large")
    p.data.skip_bad = True  # a bomb is a bad file like any other: skipped and counted
    assert download.run(p, COMMON, paths) == {"images": 3, "skipped": 1}


# --- a text file named images.zip --------------------------------------------------------------


def test_a_raw_archive_that_is_text_is_one_short_line(tiny, tmp_path, capsys):
    p, paths = tiny
    paths.raw.mkdir(parents=True)
    (paths.raw / config.RAW_ARCHIVE).write_text("these are not the images you are looking for\n")
    line = run_main(prepare, p, paths, capsys)
    assert line.startswith(f"error: {paths.raw / config.RAW_ARCHIVE}: not a readable zip") and len(line) < 200


def test_a_url_source_that_is_a_text_file_named_images_zip_is_one_short_line(tiny, tmp_path, capsys):
    p, paths = tiny
    text = tmp_path / "images.zip"
    text.write_text("404 page not found\n")
    p.data.source, p.data.sha256 = f"url:{text.as_uri()}", hashlib.sha256(text.read_bytes()).hexdigest()
    line = run_main(download, p, paths, capsys)
    assert "images.zip" in line and len(line) < 200
    assert not paths.raw.exists()


# --- params ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("prepare", "image_size", 65536),
        ("prepare", "celeba_crop", 179),
        ("data", "sample_images", 10**9),
        ("diffusion", "timesteps", 10**7),
        ("model", "base_channels", 10**5),
        ("model", "channel_mults", [1, 2, 1000]),
        ("model", "blocks_per_level", 1000),
        ("train", "steps", 10**12),
        ("train", "batch_size", 10**6),
        ("sample", "n_images", 10**9),
        ("sample", "batch_size", 10**6),
        ("evaluate", "compare_images", 10**9),
    ],
)
def test_sizes_that_allocate_have_an_upper_bound(tiny, section, key, value):
    p, _ = tiny
    setattr(getattr(p, section), key, value)
    shown = f"{value[-1]}" if isinstance(value, list) else f"{value}"
    with pytest.raises(ParamsError, match=rf"'ddpm\.{section}\.{key}(\[2\])?' is {shown}; it must be"):
        config.validate(p)


# --- CelebA's aligned images --------------------------------------------------------------------


def test_celeba_crop_cuts_the_centre_of_aligned_images_only():
    aligned = np.arange(218 * 178 * 3, dtype=np.int64).reshape(218, 178, 3)
    assert CELEBA_ALIGNED == (218, 178)
    assert np.array_equal(celeba_crop(aligned, 140), aligned[39:179, 19:159])
    assert np.array_equal(celeba_crop(aligned, 148), aligned[35:183, 15:163])
    assert celeba_crop(aligned, 0) is aligned
    other = np.zeros((100, 80, 3), np.uint8)
    assert celeba_crop(other, 140) is other
    assert config.PrepareParams().celeba_crop == 140


@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"{CELEBA} is not on this machine")
def test_real_celeba_files_download_and_prepare_with_the_centre_crop(tiny, tmp_path):
    p, paths = tiny
    src = tmp_path / "img_align_celeba"  # 8 of the real files, copied to the test's own tmp folder
    src.mkdir()
    for file in sorted(CELEBA.glob("*.jpg"))[:8]:
        shutil.copyfile(file, src / file.name)
    p.data.source = f"dir:{src}"
    p.prepare = dataclasses.replace(p.prepare, image_size=64)
    assert download.run(p, COMMON, paths) == {"images": 8, "skipped": 0}
    prepare.run(p, COMMON, paths)
    images = np.load(paths.prepared / "images.npy")
    assert images.shape == (8, 64, 64, 3) and images.dtype == np.uint8
    first = sorted(src.iterdir())[0]
    with Image.open(first) as im:
        assert im.size == (178, 218)
        expected = np.asarray(im.convert("RGB").crop((19, 39, 159, 179)).resize((64, 64), Image.Resampling.BICUBIC))
    assert np.array_equal(images[0], expected)
    p.prepare = dataclasses.replace(p.prepare, celeba_crop=0)  # the plain centre square keeps more background
    prepare.run(p, COMMON, paths)
    assert not np.array_equal(np.load(paths.prepared / "images.npy")[0], expected)


@pytest.mark.slow
@pytest.mark.skipif(not CELEBA.is_dir(), reason=f"{CELEBA} is not on this machine")
def test_the_real_celeba_folder_as_params_yaml_names_it(tiny, tmp_path, monkeypatch):
    p, _ = tiny
    monkeypatch.chdir(ROOT)  # stages run in the repo root, where the relative path resolves
    p.data.source = "dir:../shared/data/celeba_10k/img_align_celeba"
    assert download.run(p, COMMON, config.Paths(tmp_path)) == {"images": 10_000, "skipped": 0}
