"""The same bytes on another CPU: `tests/cross_cpu_probe.py` natively and under `qemu-x86_64 -cpu <model>`.

QEMU's user-mode emulator runs this project's Python and torch under another CPU's identity (its CPUID,
vendor included), so MKL, oneDNN and ATen pick their kernels as they would on that CPU. What it shows
(measured on an Intel Xeon, family 6 model 207, with the pins of `stages/__init__.py`):

- Intel to Intel (native against `-cpu Haswell`): every family byte-identical. Default suite.
- Intel to AMD (`-cpu EPYC-Rome`) with the default pin `MKL_CBWR=AVX2`: every training family differs, since
  MKL takes its non-Intel code paths for sgemm and its vector maths (exp, log, sqrt) whatever the pin says.
- With `MKL_CBWR=COMPATIBLE` and the fused AdamW kernel (no MKL sqrt in the step) conv + BatchNorm, the
  project's Transformer and the Hugging Face decoder are byte-identical across all three; the U-Net and the
  DDIM sampler still differ natively against emulated, through MKL's sqrt, which in that mode is built on an
  approximate instruction whose bits differ between an emulator and a real CPU. `-m slow` checks this.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
QEMU = shutil.which("qemu-x86_64")

pytestmark = pytest.mark.skipif(
    QEMU is None or platform.machine().lower() not in ("x86_64", "amd64"),
    reason="needs Debian's qemu-user (`apt-get install qemu-user`; .ci/run installs it) on an x86-64 machine",
)


def probe(cpu: str | None, *args: str) -> dict[str, str]:
    """The probe's digests, natively (`cpu` None) or under `qemu-x86_64 -cpu <cpu>`."""
    cmd = [sys.executable, "-m", "tests.cross_cpu_probe", *args]
    if cpu:
        cmd = [QEMU, "-cpu", cpu, *cmd]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in a if a[k] != b.get(k))


def test_intel_models_give_the_same_bytes():
    """The pinned AVX2 level holds across Intel CPUs: this machine's bytes against a Haswell's."""
    with ThreadPoolExecutor(2) as pool:
        native, haswell = pool.map(lambda cpu: probe(cpu, "families"), (None, "Haswell"))
    assert differing(native, haswell) == [], (native, haswell)


@pytest.mark.slow
def test_amd_gives_the_same_bytes_in_mkl_compatible_mode():
    """With MKL_CBWR=COMPATIBLE, Intel and AMD identities agree on conv + BN, the Transformers and the HF decoder."""
    args = ("ops", "families", "hf_decoder", "MKL_CBWR=COMPATIBLE")
    with ThreadPoolExecutor(3) as pool:
        native, haswell, epyc = pool.map(lambda cpu: probe(cpu, *args), (None, "Haswell", "EPYC-Rome"))
    assert differing(haswell, epyc) == [], (haswell, epyc)  # the two identities, both emulated: every op
    portable = {"conv_bn", "transformer", "hf_decoder", "matmul", "exp", "log", "adamw_fused", "conv2d"}
    assert [k for k in differing(native, epyc) if k in portable] == [], (native, epyc)
    print("differ natively vs emulated in COMPATIBLE mode:", differing(native, epyc))


@pytest.mark.slow
def test_amd_differs_under_the_default_pin_and_which_ops():
    """Records which ops the default pin leaves vendor-dependent; fails if that set grows beyond MKL's ops."""
    with ThreadPoolExecutor(2) as pool:
        native, epyc = pool.map(lambda cpu: probe(cpu, "ops"), (None, "EPYC-Rome"))
    mkl_ops = {"matmul", "exp", "log", "sqrt", "adamw", "conv2d_no_onednn"}  # MKL's sgemm and vector maths
    assert set(differing(native, epyc)) <= mkl_ops, differing(native, epyc)
    assert native["adamw_fused"] == epyc["adamw_fused"]  # the fused optimizer step uses none of MKL
