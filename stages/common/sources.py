"""Data sources for the `<task>-download` stages.

A source is a string param:
  sample           data the project generates itself (the default)
  dir:<path>       the course's files in a local folder (relative to the repo root or absolute)
  url:<url>        a file or archive over HTTP(S), checked against `<task>.data.sha256`
  hf:<dataset>     a Hugging Face Hub dataset (needs internet)
  kaggle:<name>    a Kaggle competition (needs the kaggle CLI and credentials)
  torchvision      torchvision's own download (needs internet)
"""

from __future__ import annotations

import dataclasses
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from stages.common.io import DataError, file_sha256
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
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: source folder not found")
    return path


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


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Extract a zip or tar archive into `dest`, refusing any member that would land outside it."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()

    def check(name: str) -> None:
        target = (root / name).resolve()
        if target != root and root not in target.parents:
            raise DataError(f"{archive}: member '{name}' would be extracted outside {dest}; refusing")

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                check(info.filename)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"{archive}: member '{info.filename}' is a symlink; refusing")
            zf.extractall(dest)
        return dest
    try:
        with tarfile.open(archive) as tf:
            for member in tf.getmembers():
                check(member.name)
                if member.issym() or member.islnk() or member.isdev():
                    raise DataError(f"{archive}: member '{member.name}' is a link or device; refusing")
            tf.extractall(dest, filter="data")
    except tarfile.TarError as err:
        raise DataError(f"{archive}: not a readable zip or tar archive ({err})") from None
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
    return safe_extract(file, out)
