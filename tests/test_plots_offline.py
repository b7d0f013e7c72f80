"""`dvc plots show` as a user sees it: every CSV drawn once (through its named plot), the HTML page self-contained
(Vega inlined, no CDN), and, where Debian's `chromium` is installed, the page rendered with no network is not
blank."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "vendor/vega/dvc_plots_offline.html"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# no network at all: every host name fails to resolve and every connection goes to a closed local port
OFFLINE = ["--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]


def dvc(*args: str, cwd: Path = ROOT) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def dvc_yaml() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))


def csv_plot_outputs() -> list[str]:
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        return sorted(o.def_path for stage in repo.index.stages for o in stage.outs if o.def_path.endswith(".csv")
                      and o.def_path.startswith("plots/"))  # fmt: skip


def test_every_csv_is_a_plot_output_and_in_a_named_plot():
    """A curve's CSV is a stage `plots:` output (cache: false, in git), not an `outs:` entry with cache: false:
    DVC keeps no run-cache record of a stage with such an out, so a fresh clone could not restore the trainers
    (tests/test_remote.py). Every CSV is also in a named top-level plot, so experiments overlay."""
    from dvc.repo import Repo

    with Repo(str(ROOT)) as repo:
        outs = [out for stage in repo.index.stages for out in stage.outs]
    csv_outs = [o for o in outs if o.def_path.startswith("plots/") and o.def_path.endswith(".csv")]
    assert csv_outs and all(o.plot and not o.use_cache for o in csv_outs)
    named = {file for plot in dvc_yaml()["plots"] for props in plot.values() for file in props["y"]}
    assert {o.def_path for o in csv_outs} == named  # every curve's CSV in a named plot, every named file an output


def test_the_page_template_is_self_contained_and_dvc_uses_it():
    page = TEMPLATE.read_text(encoding="ascii")
    assert "{plot_divs}" in page and "{scripts}" not in page  # DVC's CDN <script> tags have nowhere to go
    assert not re.search(r"<script[^>]+src=", page) and "<link" not in page
    for library, version in (("vega", "5.20.2"), ("vega-lite", "5.2.0"), ("vega-embed", "6.18.2")):
        assert f"/* {library}-{version}:" in page and f'"{version}"' in page
    config = (ROOT / ".dvc/config").read_text()
    assert re.search(r"html_template\s*=\s*\.\./vendor/vega/dvc_plots_offline\.html", config)


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("plots") / "page"
    dvc("plots", "show", "-o", str(out))
    return out / "index.html"


def test_dvc_plots_show_draws_each_named_plot_and_needs_no_cdn(page):
    html = page.read_text()
    assert "cdn.jsdelivr" not in html and not re.search(r"<script[^>]+src=", html)
    specs = [json.loads(s.split(";\n", 1)[0]) for s in html.split("var spec = ")[1:]]
    titles = [t["text"] if isinstance(t := spec.get("title", ""), dict) else t for spec in specs]
    # each named plot once; DVC also draws every plot output on its own (the CSVs must be plot outputs: see above)
    assert sorted(titles) == sorted([next(iter(p)) for p in dvc_yaml()["plots"]] + csv_plot_outputs())


def chromium(*args: str, timeout: int = 90) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--virtual-time-budget=15000", *OFFLINE, *args]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_page_renders_offline_in_headless_chromium(page, tmp_path):
    html = page.read_text()
    charts = html.count("var spec = ")
    dom = chromium("--dump-dom", page.as_uri()).stdout
    # vega-embed draws each chart into a <canvas class="marks">; a page whose scripts did not load has none
    assert dom.count('class="marks"') == charts, dom[-2000:]
    shot = tmp_path / "page.png"
    chromium("--window-size=1200,1600", f"--screenshot={shot}", page.as_uri())
    from PIL import Image

    image = Image.open(shot).convert("L")
    dark = sum(1 for value in image.getdata() if value < 200)
    assert dark > 0.01 * image.width * image.height, f"{shot}: {dark} non-white pixels: the page is blank"
