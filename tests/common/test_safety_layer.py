"""The shared safety layer (issue 25): user-named paths and outputs, checkpoints, params, JSON, images, cli."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import random
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from stages.common import checkpoint, cli
from stages.common.images import open_rgb, to_rgb
from stages.common.io import DataError, atomic_path, check_output, read_json, resolve_inside
from stages.common.params import ParamsError, Range, between, check_ranges, from_dict, load_params
from stages.common.sources import check_no_escape, iter_source_files, safe_extract

# ------------------------------------------------------------------ 1. paths a user's files name


@pytest.mark.parametrize("name", ["../x", "a/../../x", "/etc/passwd", "sub/../../../etc/passwd"])
def test_resolve_inside_refuses_names_that_leave_the_folder(tmp_path, name):
    with pytest.raises(DataError, match=rf"^list.csv: '{name}' leaves {tmp_path}$"):
        resolve_inside(tmp_path, name, what="list.csv")


def test_resolve_inside_follows_links_inside_and_refuses_links_out(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "secret.txt"
    (root / "images").mkdir(parents=True)
    (root / "images" / "a.png").write_bytes(b"x")
    outside.write_text("secret")
    (root / "in.png").symlink_to(root / "images" / "a.png")
    (root / "out.png").symlink_to(outside)
    assert resolve_inside(root, "images/a.png") == root / "images" / "a.png"
    assert resolve_inside(root, "in.png") == root / "in.png"
    assert resolve_inside(root, "not-there-yet.png") == root / "not-there-yet.png"
    with pytest.raises(DataError, match=rf"^{root}: 'out.png' leaves {root}$"):
        resolve_inside(root, "out.png")
    with pytest.raises(DataError, match="NUL"):
        resolve_inside(root, "a\0b")


def tree_with_links(tmp_path: Path) -> tuple[Path, Path]:
    """A source folder with a file, a link to a file inside, and a folder linked to a folder inside."""
    root, outside = tmp_path / "user files", tmp_path / "elsewhere"
    (root / "train" / "cat").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd.png").write_bytes(b"secret")
    (root / "train" / "cat" / "1.PNG").write_bytes(b"1")
    (root / "train" / "cat" / "notes.txt").write_text("not an image")
    (root / "train" / "cat" / "2.png").symlink_to(root / "train" / "cat" / "1.PNG")
    (root / "train" / "kitten").symlink_to(root / "train" / "cat", target_is_directory=True)
    return root, outside


def test_source_links_inside_are_followed(tmp_path):
    root, _ = tree_with_links(tmp_path)
    cat, kitten = root / "train" / "cat", root / "train" / "kitten"
    assert iter_source_files(root, (".png",), recursive=True) == [
        cat / "1.PNG",
        cat / "2.png",
        kitten / "1.PNG",
        kitten / "2.png",
    ]
    assert iter_source_files(root, "*.txt", folder=cat) == [cat / "notes.txt"]
    assert iter_source_files(root, ".png", folder=cat) == []  # a str is a glob pattern, not a suffix
    assert check_no_escape(root, kitten / "2.png") == kitten / "2.png"


def test_source_links_outside_are_refused_naming_the_link(tmp_path):
    root, outside = tree_with_links(tmp_path)
    (root / "train" / "cat" / "3.png").symlink_to(outside / "passwd.png")
    with pytest.raises(DataError, match=rf"^{root}/train/cat/3.png: a symlink to {outside}/passwd.png, outside"):
        iter_source_files(root, (".png",), folder=root / "train" / "cat")
    (root / "train" / "cat" / "3.png").unlink()
    (root / "train" / "dog").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DataError, match=rf"^{root}/train/dog: a symlink to {outside}, outside the source folder"):
        iter_source_files(root, (".png",), recursive=True)
    with pytest.raises(DataError, match=rf"^{root}/train/dog: a symlink"):
        check_no_escape(root, root / "train" / "dog" / "passwd.png")  # the link, not the file, is named


def test_source_loops_and_broken_links_are_refused(tmp_path):
    root, _ = tree_with_links(tmp_path)
    (root / "train" / "cat" / "up").symlink_to(root / "train", target_is_directory=True)
    with pytest.raises(DataError, match=r"train/cat/up: a symlink back to .*a folder above it"):
        iter_source_files(root, (".png",), recursive=True)
    (root / "train" / "cat" / "up").unlink()
    (root / "train" / "cat" / "gone.png").symlink_to(root / "missing.png")
    with pytest.raises(DataError, match=r"gone.png: not a readable file \(a broken symlink"):
        iter_source_files(root, (".png",), folder=root / "train" / "cat")


def test_safe_extract_names_the_users_archive_and_member_never_the_scratch_folder(tmp_path):
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("ok.txt", "x")
        zf.writestr("../../escaped.txt", "x")
    scratch = tmp_path / ".raw.123.abcdefgh.tmp" / "extracted"
    with pytest.raises(DataError) as err:
        safe_extract(evil, scratch, name="the user's images.zip")
    assert str(err.value) == (
        "the user's images.zip: member '../../escaped.txt' would be extracted outside the archive's folder; refusing"
    )
    with zipfile.ZipFile(tmp_path / "bad-crc.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", "hello world")
    data = (tmp_path / "bad-crc.zip").read_bytes()
    (tmp_path / "bad-crc.zip").write_bytes(data.replace(b"hello world", b"hello WORLD"))
    with pytest.raises(DataError, match=r"^bad-crc.zip: damaged or unsupported zip archive"):
        safe_extract(tmp_path / "bad-crc.zip", tmp_path / "out", name="bad-crc.zip")


# ------------------------------------------------------------------ 2. outputs


def test_check_output_refuses_a_folder_and_an_input(tmp_path):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "keep.csv").write_text("precious")
    with pytest.raises(DataError, match=rf"^{folder}: is a folder; --output must name a file$"):
        check_output(folder, inputs=[tmp_path / "in.json"])
    assert (folder / "keep.csv").read_text() == "precious"
    given = tmp_path / "in.json"
    given.write_text("[]")
    (tmp_path / "alias.json").symlink_to(given)
    for same in (given, tmp_path / "alias.json", tmp_path / "sub" / ".." / "in.json"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(DataError, match=r"is also an input; choose another --out$"):
            check_output(same, inputs=[given], key="--out")
    assert given.read_text() == "[]"
    assert check_output(tmp_path / "new.csv", inputs=[given]) == tmp_path / "new.csv"


def test_atomic_path_never_replaces_a_folder_with_a_file_or_the_reverse(tmp_path):
    folder = tmp_path / "out.csv"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(DataError, match=rf"^{folder}: is a folder; will not replace it with a file"):
        with atomic_path(folder) as tmp:
            tmp.write_text("a,b\n")
    assert (folder / "keep.txt").read_text() == "precious"
    file = tmp_path / "raw"
    file.write_text("precious")
    with pytest.raises(DataError, match=rf"^{file}: is a file; will not replace it with a folder"):
        with atomic_path(file) as tmp:
            tmp.mkdir()
    assert file.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv", "raw"]  # no temporaries left


def test_atomic_path_replaces_like_with_like_and_a_link_not_its_target(tmp_path):
    folder = tmp_path / "raw"
    (folder / "old").mkdir(parents=True)
    with atomic_path(folder) as tmp:
        (tmp / "new").mkdir(parents=True)
    assert sorted(p.name for p in folder.iterdir()) == ["new"]
    target = tmp_path / "cache-file"
    target.write_text("cached")
    (tmp_path / "metrics.json").symlink_to(target)  # as DVC's symlink cache leaves an output
    with atomic_path(tmp_path / "metrics.json") as tmp:
        tmp.write_text("{}")
    assert not (tmp_path / "metrics.json").is_symlink() and (tmp_path / "metrics.json").read_text() == "{}"
    assert target.read_text() == "cached"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache-file", "metrics.json", "raw"]


def test_atomic_path_names_a_folder_it_cannot_create(tmp_path):
    (tmp_path / "plots").write_text("a file where a folder should be")
    with pytest.raises(DataError, match=rf"^{tmp_path}/plots/task: cannot write here \(Not a directory\)$"):
        with atomic_path(tmp_path / "plots" / "task" / "loss.png") as tmp:
            tmp.write_bytes(b"png")
    assert (tmp_path / "plots").read_text() == "a file where a folder should be"


# ------------------------------------------------------------------ 3. checkpoints


def test_load_refuses_what_is_not_a_plain_checkpoint(tmp_path):
    with pytest.raises(DataError, match=rf"^{tmp_path}/model.pt: file not found; run pokemon-train first$"):
        checkpoint.load(tmp_path / "model.pt", made_by="pokemon-train")
    good = tmp_path / "good.pt"
    torch.save({"state": {"w": torch.ones(50)}}, good)
    assert torch.equal(checkpoint.load(good)["state"]["w"], torch.ones(50))
    marker = tmp_path / "code-ran"

    class Evil:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    cases = {
        "empty.pt": (b"", "empty file"),
        "cut.pt": (good.read_bytes()[:200], "cut short, or not a torch checkpoint"),
        "text.pt": (b"hello\n", "cut short, or not a torch checkpoint"),
        "evil.pt": (None, "holds os.makedirs, which loading with weights_only=True refuses"),
        "tensor.pt": (None, "holds a Tensor, not a checkpoint's dict"),
    }
    torch.save({"x": Evil()}, tmp_path / "evil.pt")
    torch.save(torch.zeros(2), tmp_path / "tensor.pt")
    for name, (data, reason) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        message = f"{tmp_path / name}: unreadable checkpoint ({reason}); delete it and run x-train again"
        with pytest.raises(DataError) as err:
            checkpoint.load(tmp_path / name, made_by="x-train")
        assert str(err.value) == message
    assert not marker.exists()


def trainer(seed: int = 0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10))
    return model, optimizer, scheduler


def step(model, optimizer, scheduler) -> None:
    model(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    scheduler.step()


def extras(model, epoch: int) -> dict:
    """What the trainers store: vit (a torch and a numpy generator's state), ddpm (EMA weights), news (an
    AveragedModel's state), pokemon/twolayer (the best weights), histories (some with numpy numbers), run ids."""
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    g, rng = torch.Generator().manual_seed(epoch), np.random.default_rng(epoch)
    rng.random(3)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    ema.update_parameters(model)
    return {
        "generator": g.get_state(),
        "numpy_rng": rng.bit_generator.state,
        "python_rng": random.Random(epoch).getstate(),
        "ema": ema.state_dict(),
        "shadow": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "best": {"score": np.float64(0.5), "epoch": epoch, "state": model.state_dict()},
        "states": [model.state_dict()],
        "history": [{"epoch": e, "loss": np.float32(1 / e), "acc": float(e)} for e in range(1, epoch + 1)],
        "epoch": epoch,
        "elapsed": 1.5,
        "mlflow_run_id": None,
    }


def test_save_keeps_two_and_a_corrupt_newest_falls_back_to_the_previous(tmp_path, capsys):
    folder = tmp_path / "scratch"
    model, optimizer, scheduler = trainer()
    for epoch in (1, 2, 3):
        step(model, optimizer, scheduler)
        checkpoint.save(folder, epoch, model, optimizer, scheduler, **extras(model, epoch))
        if epoch == 2:
            expected = {k: v.clone() for k, v in model.state_dict().items()}
            rng_after_two = torch.get_rng_state()
    assert [p.name for p in checkpoint.checkpoints(folder)] == ["epoch-00002.pt", "epoch-00003.pt"]
    newest = folder / "epoch-00003.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # a disk that filled up mid-write
    capsys.readouterr()

    again, optimizer2, scheduler2 = trainer(seed=1)
    saved = checkpoint.resume(folder, again, optimizer2, scheduler2)
    out, err = capsys.readouterr()
    assert err == (
        f"warning: {newest}: unreadable checkpoint (cut short, or not a torch checkpoint); "
        f"moved to {newest}.corrupt, resuming from {folder / 'epoch-00002.pt'}\n"
    )
    assert out == f"resuming from {folder / 'epoch-00002.pt'}\n"
    assert (folder / "epoch-00003.pt.corrupt").stat().st_size == 1000 and not newest.exists()
    assert all(torch.equal(again.state_dict()[k], v) for k, v in expected.items())
    assert torch.equal(torch.get_rng_state(), rng_after_two) and scheduler2.last_epoch == 2
    want = extras(model, 2)
    assert torch.equal(saved["generator"], want["generator"]) and saved["numpy_rng"] == want["numpy_rng"]
    assert saved["python_rng"] == want["python_rng"]
    assert saved["history"] == [{"epoch": 1, "loss": 1.0, "acc": 1.0}, {"epoch": 2, "loss": 0.5, "acc": 2.0}]
    assert type(saved["history"][1]["loss"]) is float and type(saved["best"]["score"]) is float
    assert saved["ema"].keys() == want["ema"].keys() and saved["states"][0].keys() == expected.keys()
    g = torch.Generator()
    g.set_state(saved["generator"])  # each state goes back where the trainers put it
    rng = np.random.default_rng()
    rng.bit_generator.state = saved["numpy_rng"]
    random.Random().setstate(saved["python_rng"])


def test_every_unreadable_checkpoint_is_moved_aside_and_the_run_starts_afresh(tmp_path, capsys):
    folder = tmp_path / "scratch"
    folder.mkdir()
    (folder / "epoch-00001.pt").write_bytes(b"")
    (folder / "epoch-00002.pt").write_bytes(b"junk")
    assert checkpoint.latest(folder) is None
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"warning: {folder}/epoch-00002.pt: unreadable checkpoint (cut short, or not a torch checkpoint); "
        f"moved to {folder}/epoch-00002.pt.corrupt, resuming from {folder}/epoch-00001.pt",
        f"warning: {folder}/epoch-00001.pt: unreadable checkpoint (empty file); "
        f"moved to {folder}/epoch-00001.pt.corrupt, starting afresh",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-00001.pt.corrupt", "epoch-00002.pt.corrupt"]


def test_checkpoints_are_ordered_by_number_past_five_digits(tmp_path):
    model, optimizer, scheduler = trainer()
    for at in (99_998, 99_999, 100_000):
        checkpoint.save(tmp_path, at, model, optimizer, scheduler, step=at)
    assert [p.name for p in checkpoint.checkpoints(tmp_path)] == ["epoch-99999.pt", "epoch-100000.pt"]
    assert checkpoint.latest(tmp_path)["step"] == 100_000


@pytest.mark.parametrize(
    ("extra", "where"),
    [
        ({"states": np.zeros(3)}, r"checkpoint\['states'\] is a numpy.ndarray"),
        ({"generator": torch.Generator()}, r"checkpoint\['generator'\] is a torch._C.Generator"),
        ({"history": [{"params": Range(1)}]}, r"checkpoint\['history'\]\[0\]\['params'\] is a stages.common"),
    ],
)
def test_save_refuses_what_weights_only_would_not_load(tmp_path, extra, where):
    model, optimizer, _ = trainer()
    with pytest.raises(TypeError, match=where):
        checkpoint.save(tmp_path, 1, model, optimizer, None, **extra)
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ 4. params


@dataclasses.dataclass
class TrainParams:
    lr: float = 0.1
    sizes: list[float] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr: .nan", r"^parameter 'task.lr' is nan; it must be a finite number$"),
        ("lr: .inf", r"^parameter 'task.lr' is inf; it must be a finite number$"),
        ("lr: -.inf", r"^parameter 'task.lr' is -inf; it must be a finite number$"),
        ("lr: 1.0e+309", r"^parameter 'task.lr' is inf; it must be a finite number$"),
        (f"lr: {10**400}", r"^parameter 'task.lr' is inf; it must be a finite number$"),
        ("sizes: [1.0, .nan]", r"^parameter 'task.sizes\[1\]' is nan; it must be a finite number$"),
    ],
)
def test_float_params_must_be_finite(tmp_path, text, message):
    (tmp_path / "params.yaml").write_text("task:\n  " + text + "\n")
    with pytest.raises(ParamsError, match=message):
        load_params("task", TrainParams, tmp_path / "params.yaml")
    assert from_dict(TrainParams, {"lr": 10**300}, "task").lr == 1e300


def test_ranges_refuse_nan_and_show_int_bounds_in_full():
    assert not any(r.contains(math.nan) for r in (Range(), Range(0), between(0.0, 1.0)))
    assert between(1, 1_000_000).contains(1_000_000) and not between(1, 1_000_000).contains(1_000_001)

    class P:
        width = 10**12

    with pytest.raises(ParamsError, match=r"^parameter 'task.width' is 1000000000000; it must be in \[1, 1000000\]$"):
        check_ranges(P(), "task", {"width": between(1, 1_000_000)})
    assert str(between(0.0, 0.001, open_high=True)) == "in [0, 0.001)"


# ------------------------------------------------------------------ 5. JSON and the last line of defence


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"[" * 100_000, r"^in.json: not valid JSON here \(nested too deeply\)$"),
        (b'{"loss": NaN}', r"^in.json: NaN is not a JSON number; write a finite number or null$"),
        (b"[1, -Infinity]", r"^in.json: -Infinity is not a JSON number"),
        (b'[\n  {"a": 1},\n  {"b": 2,}\n]\n', r"^in.json:3: not valid JSON \(Expecting property name enclosed in"),
        (b"[" + b"9" * 5000 + b"]", r"^in.json: not valid JSON here \(Exceeds the limit \(4300 digits\)"),
    ],
)
def test_read_json_makes_every_bad_file_one_line(tmp_path, data, message):
    (tmp_path / "in.json").write_bytes(data)
    with pytest.raises(DataError, match=message) as err:
        read_json(tmp_path / "in.json", name="in.json")
    assert "\n" not in str(err.value)


def test_read_json_accepts_a_byte_order_mark(tmp_path):
    (tmp_path / "m.json").write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert read_json(tmp_path / "m.json") == {"a": 1}


def exit_of(run, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        cli.main(run)
    return stop.value.code, capsys.readouterr().err


def test_cli_turns_a_users_os_error_and_an_image_bomb_into_one_line(tmp_path, capsys):
    def unwritable():
        raise PermissionError(13, "Permission denied", str(tmp_path / "plots"))

    assert exit_of(unwritable, capsys) == (1, f"error: {tmp_path / 'plots'}: Permission denied\n")

    def bomb():
        raise Image.DecompressionBombError("Image size (200000000 pixels) exceeds limit")

    assert exit_of(bomb, capsys) == (1, "error: image too large (Image size (200000000 pixels) exceeds limit)\n")

    def bug():
        raise OSError("no file named: a bug")

    with pytest.raises(OSError, match="a bug"):
        cli.main(bug)
    with pytest.raises(KeyError):
        cli.main(lambda: {}["missing"])


# ------------------------------------------------------------------ 6. images


def png(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG", **kwargs)
    return buffer.getvalue()


def encoded(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def palette_image(transparent: bool) -> bytes:
    image = Image.new("P", (2, 1))
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.putpixel((1, 0), 1)
    return png(image, transparency=1) if transparent else png(image)


GREY_46 = round(0.46 * 65535)  # 30146: 117 in 8 bits


@pytest.mark.parametrize(
    ("make", "pixels"),
    [
        (lambda: png(Image.new("1", (2, 1), 1)), [(255, 255, 255)] * 2),
        (lambda: png(Image.new("L", (2, 1), 100)), [(100, 100, 100)] * 2),
        (lambda: palette_image(False), [(255, 0, 0), (0, 0, 255)]),
        (lambda: palette_image(True), [(255, 0, 0), (255, 255, 255)]),
        (lambda: png(Image.new("LA", (2, 1), (0, 128))), [(127, 127, 127)] * 2),
        (lambda: png(Image.new("RGBA", (2, 1), (255, 0, 0, 0))), [(255, 255, 255)] * 2),
        (lambda: png(Image.new("RGBA", (2, 1), (255, 0, 0, 255))), [(255, 0, 0)] * 2),
        (lambda: png(Image.new("RGB", (2, 1), (1, 2, 3)), transparency=(1, 2, 3)), [(255, 255, 255)] * 2),
        (lambda: encoded(Image.new("CMYK", (2, 1), (0, 0, 0, 0)), "TIFF"), [(255, 255, 255)] * 2),
        (lambda: encoded(Image.new("CMYK", (2, 1), (0, 255, 255, 0)), "JPEG", quality=100), [(254, 0, 0)] * 2),
        (lambda: png(Image.new("I;16", (2, 1), GREY_46)), [(117, 117, 117)] * 2),
        (lambda: png(Image.new("I;16", (2, 1), 65535)), [(255, 255, 255)] * 2),
        (lambda: encoded(Image.new("I", (2, 1), GREY_46), "TIFF"), [(117, 117, 117)] * 2),
        (lambda: encoded(Image.new("I;16B", (2, 1), GREY_46), "TIFF"), [(117, 117, 117)] * 2),
    ],
    ids=[
        "1",
        "L",
        "P",
        "P-transparent",
        "LA",
        "RGBA-clear",
        "RGBA",
        "RGB-colour-key",
        "CMYK-tiff",
        "CMYK-jpeg",
        "I;16-46%",
        "I;16-white",
        "I",
        "I;16B-tiff",
    ],  # fmt: skip
)
def test_open_rgb_converts_every_mode(tmp_path, make, pixels):
    data = make()
    (tmp_path / "image").write_bytes(data)
    for src in (data, tmp_path / "image"):
        image = open_rgb(src, "user.png")
        assert image.mode == "RGB" and image.size == (2, 1)
        got = [image.getpixel((x, 0)) for x in range(2)]
        assert all(max(abs(a - b) for a, b in zip(g, p, strict=True)) <= 1 for g, p in zip(got, pixels, strict=True)), (
            got
        )


@pytest.mark.parametrize(
    ("mode", "value", "pixel"),
    [("PA", (0, 0), (255, 255, 255)), ("YCbCr", (255, 128, 128), (255, 255, 255)), ("I;16B", GREY_46, (117,) * 3)],
)
def test_to_rgb_converts_the_modes_no_common_file_format_stores(mode, value, pixel):
    image = Image.new(mode, (1, 1), value)
    if mode == "PA":
        image.putpalette([255, 0, 0])
    assert to_rgb(image, "x").getpixel((0, 0)) == pixel


def test_open_rgb_refuses_broken_files_and_images_over_the_limit(tmp_path, monkeypatch):
    data = png(Image.new("RGB", (64, 64), (9, 9, 9)))
    for bad in (data[: len(data) // 2], b"not an image at all", b""):
        (tmp_path / "copy.png").write_bytes(bad)
        for src in (bad, tmp_path / "copy.png"):
            with pytest.raises(DataError, match=r"^the user's cat.png: not a readable image \(") as err:
                open_rgb(src, "the user's cat.png")
            assert str(tmp_path) not in str(err.value) and "\n" not in str(err.value)  # the copy is not named
    with pytest.raises(DataError, match=r"^the user's cat.png: file not found$"):
        open_rgb(tmp_path / "missing.png", "the user's cat.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    for side in (40, 50):  # 1600 pixels: PIL would only warn; 2500, over twice the limit: PIL refuses
        with pytest.raises(DataError, match=r"^big.png: image too large \("):
            open_rgb(png(Image.new("L", (side, side))), "big.png")
    assert open_rgb(png(Image.new("L", (30, 30))), "fine.png").size == (30, 30)


def test_open_rgb_returns_an_image_independent_of_the_file(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png(Image.new("RGB", (3, 3), (1, 2, 3))))
    image = open_rgb(path, path)
    os.remove(path)
    assert image.getpixel((2, 2)) == (1, 2, 3)
