"""Build `dvc_plots_offline.html`: DVC's HTML page for `dvc plots show` / `dvc plots diff` with Vega,
Vega-Lite and vega-embed inlined, so the page renders with no network (DVC's own page loads them from a CDN).

    cd /tmp && npm pack vega@5.20.2 vega-lite@5.2.0 vega-embed@6.18.2
    python vendor/vega/build.py /tmp          # reads the three .tgz files, checks their sha256, writes the page

The versions are the ones DVC's own page names (dvc_render's VegaRenderer.SCRIPTS), so the Vega-Lite
specs DVC writes are drawn by the library they were made for. `.dvc/config` points DVC at the page
(`plots.html_template`). The page has no `{scripts}` placeholder, so DVC's CDN <script> tags are left out.
"""

from __future__ import annotations

import hashlib
import sys
import tarfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "dvc_plots_offline.html"

# npm tarball -> (sha256 of the tarball, the file inside it that jsdelivr serves for the bare package URL)
PACKAGES = {
    "vega-5.20.2.tgz": (
        "d77deab01d6104b1239228720721f93003e60797d2faced7ffdd759fa70f989d",
        "package/build/vega.min.js",
    ),
    "vega-lite-5.2.0.tgz": (
        "f64ca4745f043447ac86b67dc9e9592ec2b85ac8b8dafc35faf970f142463e4b",
        "package/build/vega-lite.min.js",
    ),
    "vega-embed-6.18.2.tgz": (
        "93aeee312e92077b0252ef026c0fe0ec8fa430c19825aeada6cd3a6804e68e1b",
        "package/build/vega-embed.min.js",
    ),
}

PAGE = """<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Vega 5.20.2, Vega-Lite 5.2.0 and vega-embed 6.18.2 inlined (BSD-3-Clause, vendor/vega/LICENSE-*):
         this page renders offline. Built by vendor/vega/build.py; do not edit by hand. -->
%s
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def ascii_js(text: str) -> str:
    """Non-ASCII characters as \\uXXXX escapes (all of them are in strings or regexes in these builds),
    so the page is plain ASCII whatever encoding DVC reads and writes it with."""
    return "".join(c if ord(c) < 128 else "".join(f"\\u{u:04x}" for u in _utf16(c)) for c in text)


def _utf16(c: str) -> list[int]:
    data = c.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def build(folder: Path) -> str:
    scripts = []
    for name, (sha256, member) in PACKAGES.items():
        path = folder / name
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256:
            raise SystemExit(f"error: {path}: sha256 {digest}, expected {sha256}")
        with tarfile.open(path) as tar:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise SystemExit(f"error: {path}: no {member}")
            js = extracted.read().decode("utf-8")
        for bad in ("</script", "{plot_divs}", "{refresh_tag}", "{scripts}"):
            if bad in js:
                raise SystemExit(f"error: {path}: {member} contains {bad!r}, cannot be inlined")
        scripts.append(f"    <script>/* {name[:-4]}: {member} */\n{ascii_js(js)}\n    </script>")
    return PAGE % "\n".join(scripts)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python vendor/vega/build.py <folder with the three npm .tgz files>")
    OUT.write_text(build(Path(sys.argv[1])), encoding="ascii")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
