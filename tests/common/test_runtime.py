from pathlib import Path

import pytest
import torch

from stages.common.params import ParamsError
from stages.common.runtime import resolve_device, seed_everything

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str):
    """`code` in a fresh interpreter (MKL fixes its branch once per process), from the repo root."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_auto_device_falls_back_to_cpu_without_accelerator():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type in (expected, "mps")
    assert resolve_device("cpu") == torch.device("cpu")


def test_bad_device_is_a_params_error():
    with pytest.raises(ParamsError, match="unknown device 'gpu0'"):
        resolve_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(ParamsError, match="CUDA is not available"):
            resolve_device("cuda")


def test_seeding_makes_torch_reproducible():
    seed_everything(7)
    a = torch.randn(5)
    seed_everything(7)
    assert torch.equal(a, torch.randn(5))


def test_cpu_kernels_are_pinned_to_the_common_avx2_level():
    """Every stage imports `stages` first, which pins ATen and oneDNN to AVX2 and MKL to its COMPATIBLE (portable)
    branch on x86-64 (stages/__init__.py)."""
    import os
    import platform

    import torch

    import stages  # noqa: F401

    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the pins are for x86-64 only")
    assert (os.environ["ATEN_CPU_CAPABILITY"], os.environ["ONEDNN_MAX_CPU_ISA"], os.environ["MKL_CBWR"]) == (
        "avx2", "AVX2", "COMPATIBLE")  # fmt: skip
    assert torch.backends.cpu.get_cpu_capability() == "AVX2"


def test_gpu_precision_is_decided_once_and_off_on_a_cpu():
    """bf16 autocast and channels_last are CUDA-only (stages.common.runtime): on a CPU the trainers run in fp32 and
    the default layout, whatever their `bf16`/`channels_last` params say, so the bytes do not depend on the CPU."""
    from stages.common.runtime import autocast, memory_format

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    with autocast(cpu):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    assert memory_format(cpu) == torch.contiguous_format and memory_format(cpu, enabled=True) == torch.contiguous_format
    assert memory_format(cuda) == torch.channels_last and memory_format(cuda, enabled=False) == torch.contiguous_format
    resolve_device("cpu")
    assert torch.get_float32_matmul_precision() == "highest"  # TF32 is for CUDA only


@pytest.mark.parametrize("kernels", ["portable", "fast"])
def test_the_same_kernels_may_be_asked_for_again_after_mkl_ran(kernels):
    """An ensemble's members (news) and several runs in one process (pokemon's sampling choice) set up each run;
    on AMD, MKL reports its own branch rather than the AVX2 one asked for, which once made the second ask fail."""
    run_python(
        "from stages.common.runtime import set_kernels\n"
        f"set_kernels('{kernels}')\n"
        "import torch\n"
        "torch.randn(64, 64) @ torch.randn(64, 64)\n"
        f"set_kernels('{kernels}')\n"
    )


def test_fast_kernels_leave_the_portable_branch_on_every_processor():
    """`common.kernels: fast` is MKL's AVX2 branch on Intel; MKL refuses it on AMD, where it once silently stayed
    COMPATIBLE (the slow portable path) and now takes MKL's own choice. `machine()` names the branch taken."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkl.is_available():
        pytest.skip("MKL's branches are for x86-64 only")
    result = run_python(
        "import stages\n"
        "from stages.common.runtime import machine, set_kernels\n"
        "set_kernels('fast')\n"
        "import torch\n"
        "torch.randn(64, 64) @ torch.randn(64, 64)\n"
        "print(machine()['kernels'])\n"
    )
    assert result.stdout.split("\n")[-2] in ("fast", "fast (MKL's choice)")
