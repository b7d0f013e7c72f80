"""Data sources for the `<task>-download` stages.

A source is a string param:
  sample           data the project generates itself (the default)
  dir:<path>       the course's files in a local folder (relative to the repo root or absolute)
  url:<url>        a file or archive over HTTP(S), checked against `<task>.data.sha256`
  hf:<dataset>     a Hugging Face Hub dataset (needs internet)
  kaggle:<name>    a Kaggle competition (needs the kaggle CLI and credentials)
  torchvision      torchvision's own download (needs internet)

Symlinks in a `dir:` source: a loader lists the source with `iter_source_files` (or checks a path it found
there with `check_no_escape`). A symlink that resolves inside the source folder is followed like the file or
folder it points to; one that resolves outside it is refused with one DataError naming the link (never
silently skipped, never copied), and so is a link that loops back to a folder above it. The source folder
itself may be a link. File names a user's file gives (a CSV's file column) go through
`stages.common.io.resolve_inside`. Archives are extracted by `safe_extract`, which refuses links altogether.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import gzip
import lzma
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm import tqdm

from stages.common.io import DataError, file_sha256, is_inside
from stages.common.params import ParamsError

KINDS = ("sample", "dir", "url", "hf", "kaggle", "torchvision")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")


@dataclasses.dataclass(frozen=True)
class Source:
    kind: str
    value: str = ""


def parse_source(spec: str, allowed: tuple[str, ...] = KINDS, key: str = "data.source") -> Source:
    """Split 'kind:value' and check the kind is one this task supports."""
    kind, sep, value = spec.partition(":")
    if kind not in ("sample", "torchvision") and not sep:
        kind, value = spec, ""
    if kind not in allowed:
        raise ParamsError(f"parameter '{key}' is {spec!r}; supported sources: {', '.join(allowed)}")
    if kind in ("dir", "url", "hf", "kaggle") and not value:
        raise ParamsError(f"parameter '{key}' is {spec!r}; '{kind}:' needs a value after the colon")
    if kind in ("sample", "torchvision") and sep:
        raise ParamsError(f"parameter '{key}' is {spec!r}; '{kind}' takes no value")
    return Source(kind, value)


def require_dir(path: str | Path) -> Path:
    """The `dir:` source folder `path`; a DataError if it is missing or holds a symlink that leads out of it
    (checked once for the whole tree, so no loader can read outside the folder the user named)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: source folder not found")
    for folder, dirs, files in os.walk(path):  # links are not followed: each is checked where it stands
        for name in dirs + files:
            entry = Path(folder) / name
            if entry.is_symlink():
                check_no_escape(path, entry)
    return path


def check_no_escape(root: str | Path, path: str | Path) -> Path:
    """`path`, found under the source folder `root`, if it resolves inside `root`; else a DataError naming the
    symlink through which it leaves."""
    root, path = Path(root), Path(path)
    if is_inside(path, root, root):
        return path
    link = path
    below = len(root.parts) + 1 if path.is_relative_to(root) else 1
    for depth in range(below, len(path.parts) + 1):  # the outermost link below `root` that resolves outside
        step = Path(*path.parts[:depth])
        if step.is_symlink() and not is_inside(step, root, root):
            link = step
            break
    target = os.readlink(link) if link.is_symlink() else link.resolve()
    raise DataError(f"{link}: a symlink to {target}, outside the source folder {root}; refusing (copy it in instead)")


def iter_source_files(
    root: str | Path, match: str | tuple[str, ...] = "*", *, folder: str | Path | None = None, recursive: bool = False
) -> list[Path]:
    """The files in `folder` (default: the source folder `root`; with `recursive`, in its subfolders too) whose
    name matches `match`, a glob pattern (`'*.txt'`, `'train.txt'`) or a tuple of suffixes compared ignoring
    case (`('.png', '.jpg')`), sorted by path. Symlinks follow the module's rule (inside: followed; outside:
    DataError); a matching name that is not a readable regular file (a broken link, a pipe) is a DataError."""
    root = Path(root)
    suffixes = None if isinstance(match, str) else tuple(s.lower() for s in match)
    found: list[Path] = []

    def walk(directory: Path, above: tuple[Path, ...]) -> None:
        for entry in sorted(directory.iterdir()):
            if entry.is_dir():
                if recursive:
                    check_no_escape(root, entry)
                    if entry.resolve() in above:
                        raise DataError(f"{entry}: a symlink back to {entry.resolve()}, a folder above it; refusing")
                    walk(entry, (*above, entry.resolve()))
            elif entry.name.lower().endswith(suffixes) if suffixes else fnmatch.fnmatchcase(entry.name, match):
                if not entry.is_file():
                    raise DataError(f"{entry}: not a readable file (a broken symlink or a special file)")
                found.append(check_no_escape(root, entry))

    start = Path(folder) if folder is not None else root
    walk(check_no_escape(root, start), (start.resolve(),))
    return sorted(found)


def download(url: str, dest: str | Path, sha256: str, chunk: int = 1 << 20) -> Path:
    """Download `url` to `dest`, resuming a partial `dest.part`, and verify its sha256.

    The file only appears at `dest` once complete and verified.
    """
    dest = Path(dest)
    sha256 = sha256.strip().lower()  # hex digests are written in either case
    if not sha256:
        raise ParamsError(f"a sha256 is required to download {url} (set <task>.data.sha256)")
    if dest.is_file() and file_sha256(dest) == sha256:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if offset and response.status != 206:  # server ignored Range: start again
                offset = 0
            total = response.headers.get("Content-Length")
            total = int(total) + offset if total else None
            with (
                part.open("ab" if offset else "wb") as f,
                tqdm(total=total, initial=offset, unit="B", unit_scale=True, desc=dest.name) as bar,
            ):
                for block in iter(lambda: response.read(chunk), b""):
                    f.write(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # already have every byte
            pass
        else:
            raise DataError(f"{url}: download failed ({err})") from None
    except (urllib.error.URLError, OSError) as err:
        raise DataError(f"{url}: download failed ({err}); run again to resume") from None
    actual = file_sha256(part)
    if actual != sha256:
        part.unlink()
        raise DataError(f"{url}: sha256 mismatch (expected {sha256}, got {actual}); the partial file was removed")
    part.replace(dest)
    return dest


def is_archive(path: str | Path) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def safe_extract(archive: str | Path, dest: str | Path, name: str | Path | None = None) -> Path:
    """Extract a zip or tar archive into `dest`, refusing links, devices and any member that would land outside
    it. Errors name `name` (default: `archive`; pass the user's path or URL when `archive` is a copy) and the
    member, never `dest` (often a temporary folder)."""
    archive, dest = Path(archive), Path(dest)
    shown = name if name is not None else archive
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def check(member: str) -> None:
        if not (root / member).resolve().is_relative_to(root):
            raise DataError(f"{shown}: member '{member}' would be extracted outside the archive's folder; refusing")

    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    check(info.filename)
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise DataError(f"{shown}: member '{info.filename}' is a symlink; refusing")
                zf.extractall(dest)
        # a damaged member (bad CRC, cut short), an unknown compression method, a password
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            raise DataError(f"{shown}: damaged or unsupported zip archive ({err})") from None
        return dest
    try:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                check(member.name)
                if member.issym() or member.islnk() or member.isdev():
                    raise DataError(f"{shown}: member '{member.name}' is a link or device; refusing")
            tf.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__  # tarfile's span lines
        raise DataError(f"{shown}: not a readable zip or tar archive ({reason})") from None
    return dest


def fetch_url(url: str, sha256: str, workdir: str | Path) -> Path:
    """Download `url` into `workdir` (kept between runs, for resuming); return a folder holding its content."""
    workdir = Path(workdir)
    sha256 = sha256.strip().lower()
    name = Path(urllib.request.url2pathname(url.split("?")[0])).name or "download"
    file = download(url, workdir / sha256[:16] / name, sha256)
    if not is_archive(file):
        return file.parent
    out = workdir / sha256[:16] / "extracted"
    if out.exists():
        shutil.rmtree(out)
    return safe_extract(file, out, name=url)
