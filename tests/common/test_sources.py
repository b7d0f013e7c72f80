import hashlib
import http.server
import io
import tarfile
import threading
import zipfile

import pytest

from stages.common.io import DataError
from stages.common.params import ParamsError
from stages.common.sources import Source, download, fetch_url, parse_source, safe_extract


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("sample", Source("sample")),
        ("dir:../data/x", Source("dir", "../data/x")),
        ("url:http://127.0.0.1:1/a.zip", Source("url", "http://127.0.0.1:1/a.zip")),
        ("hf:owner/name", Source("hf", "owner/name")),
    ],
)
def test_parse_source(spec, expected):
    assert parse_source(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("dir:", "needs a value"),
        ("ftp:x", "supported sources"),
        ("sample:x", "takes no value"),
        ("kaggle:c", "supported"),
    ],
)
def test_parse_source_rejects(spec, message):
    with pytest.raises(ParamsError, match=message):
        parse_source(spec, allowed=("sample", "dir", "url", "hf"))


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves `files` from memory, honouring `Range: bytes=N-` like a real file server."""

    files: dict[str, bytes] = {}
    requests: list[str] = []

    def do_GET(self):  # noqa: N802
        self.requests.append(self.headers.get("Range", ""))
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    RangeHandler.files, RangeHandler.requests = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}", RangeHandler
    httpd.shutdown()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_download_verifies_sha256(server, tmp_path):
    base, handler = server
    handler.files["/data.bin"] = b"x" * 5000
    path = download(f"{base}/data.bin", tmp_path / "data.bin", sha(b"x" * 5000))
    assert path.read_bytes() == b"x" * 5000
    with pytest.raises(DataError, match="sha256 mismatch"):
        download(f"{base}/data.bin", tmp_path / "other.bin", sha(b"y"))
    assert not (tmp_path / "other.bin").exists() and not (tmp_path / "other.bin.part").exists()


def test_download_resumes_a_partial_file(server, tmp_path):
    base, handler = server
    body = bytes(range(256)) * 40
    handler.files["/big.bin"] = body
    (tmp_path / "big.bin.part").write_bytes(body[:1000])
    download(f"{base}/big.bin", tmp_path / "big.bin", sha(body))
    assert (tmp_path / "big.bin").read_bytes() == body
    assert handler.requests == ["bytes=1000-"]


def test_download_errors_are_clear(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="download failed"):
        download(f"{base}/missing.zip", tmp_path / "m.zip", sha(b""))
    with pytest.raises(ParamsError, match="sha256 is required"):
        download(f"{base}/missing.zip", tmp_path / "m.zip", "")


def test_fetch_url_extracts_an_archive(server, tmp_path):
    base, handler = server
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("top/a.txt", "hello")
    handler.files["/pack.zip"] = buffer.getvalue()
    folder = fetch_url(f"{base}/pack.zip", sha(buffer.getvalue()), tmp_path / "downloads")
    assert (folder / "top" / "a.txt").read_text() == "hello"


def test_safe_extract_refuses_escaping_members(tmp_path):
    evil_zip = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil_zip, "w") as zf:
        zf.writestr("../escaped.txt", "x")
    with pytest.raises(DataError, match="outside"):
        safe_extract(evil_zip, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()

    evil_tar = tmp_path / "evil.tar"
    with tarfile.open(evil_tar, "w") as tf:
        info = tarfile.TarInfo("/tmp/absolute.txt")
        info.size = 1
        tf.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DataError, match="outside"):
        safe_extract(evil_tar, tmp_path / "out2")

    link_tar = tmp_path / "link.tar"
    with tarfile.open(link_tar, "w") as tf:
        info = tarfile.TarInfo("inside")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    with pytest.raises(DataError, match="link"):
        safe_extract(link_tar, tmp_path / "out3")


def test_safe_extract_rejects_non_archives(tmp_path):
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not an archive")
    with pytest.raises(DataError, match="not a readable zip or tar"):
        safe_extract(junk, tmp_path / "out")
