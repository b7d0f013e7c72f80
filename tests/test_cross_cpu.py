"""The same bytes on another CPU: `tests/cross_cpu_probe.py` natively and under `qemu-x86_64 -cpu <model>`.

QEMU's user-mode emulator runs this project's Python and torch under another CPU's identity (its CPUID,
vendor included), so MKL, oneDNN and ATen pick their kernels as they would on that CPU. With the pins of
`stages/__init__.py` (`common.kernels: portable`, the default) every model family the project trains gives the
same bytes natively, as an Intel Haswell and as an AMD EPYC-Rome. Two float32 ops still differ: MKL's `sqrt`
and, through it, the non-fused Adam step; the project uses neither (the static checks below keep it so).
With `common.kernels: fast` (MKL's AVX2 branch) MKL takes its non-Intel paths on AMD, and `-m slow` records
which ops then differ.
"""

from __future__ import annotations

import ast
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
needs_qemu = pytest.mark.skipif(
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


def across(cpus: tuple[str | None, ...], *args: str) -> list[dict[str, str]]:
    with ThreadPoolExecutor(len(cpus)) as pool:
        return list(pool.map(lambda cpu: probe(cpu, *args), cpus))


def differing(a: dict[str, str], b: dict[str, str]) -> list[str]:
    return sorted(k for k in a if a[k] != b.get(k))


@needs_qemu
def test_every_model_family_gives_the_same_bytes_on_intel_and_amd():
    """conv + BatchNorm, the project's Transformer, the U-Net and DDIM sampling, each a few AdamW steps."""
    native, haswell, epyc = across((None, "Haswell", "EPYC-Rome"), "families")
    assert differing(native, haswell) == [], (native, haswell)
    assert differing(native, epyc) == [], (native, epyc)


@needs_qemu
@pytest.mark.slow
def test_ops_and_the_hugging_face_decoder_across_cpus():
    """Every op but float32 sqrt (and the foreach Adam step built on it) agrees, and so does a tiny Llama."""
    native, haswell, epyc = across((None, "Haswell", "EPYC-Rome"), "ops", "hf_decoder")
    assert differing(haswell, epyc) == [], (haswell, epyc)
    assert set(differing(native, epyc)) <= {"sqrt", "adamw"}, differing(native, epyc)


@needs_qemu
@pytest.mark.slow
def test_fast_kernels_differ_on_amd_only_in_mkl_ops():
    """`common.kernels: fast` (MKL_CBWR=AVX2): Intel models agree; on AMD only MKL's ops may differ."""
    native, haswell, epyc = across((None, "Haswell", "EPYC-Rome"), "ops", "MKL_CBWR=AVX2")
    assert differing(native, haswell) == []
    assert set(differing(native, epyc)) <= {"matmul", "exp", "log", "sqrt", "adamw", "conv2d_no_onednn"}
    assert native["adamw_fused"] == epyc["adamw_fused"]  # the fused optimizer step uses none of MKL


# --- static checks: the code keeps away from the two ops that differ --------------------------------


def calls(path: Path):
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            yield node


def test_no_torch_sqrt_in_stages():
    """MKL's float32 sqrt rounds differently on different CPUs: square roots of constants are taken in Python."""
    found = [
        f"{path.relative_to(ROOT)}:{node.lineno}"
        for path in sorted((ROOT / "stages").rglob("*.py"))
        for node in calls(path)
        if isinstance(node.func, ast.Attribute) and node.func.attr in ("sqrt", "sqrt_", "rsqrt")
        and not (isinstance(node.func.value, ast.Name) and node.func.value.id in ("math", "np", "numpy"))
    ]  # fmt: skip
    assert found == [], f"tensor sqrt (use math.sqrt on Python floats, or a precomputed table): {found}"


def test_every_adam_optimizer_is_fused():
    """The fused Adam/AdamW kernel computes its step without MKL, so it is the same on every CPU."""
    found = []
    for path in sorted((ROOT / "stages").rglob("*.py")):
        for node in calls(path):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            fused = any(k.arg == "fused" and getattr(k.value, "value", None) is True for k in node.keywords)
            if name in ("Adam", "AdamW") and not fused:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == [], f"Adam/AdamW without fused=True: {found}"
