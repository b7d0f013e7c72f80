"""Seeding, determinism and device selection."""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any

import numpy as np

from stages.common.params import ParamsError

if TYPE_CHECKING:
    import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch; with `deterministic`, ask torch for deterministic kernels."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this to be deterministic; harmless on CPU.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def resolve_device(name: str = "auto") -> torch.device:  # noqa: F821
    """`auto` picks cuda, then mps, then cpu; anything else is passed to torch.device and checked.
    On CUDA, fp32 matrix products may use TF32 (see autocast below)."""
    device = _device(name)
    if device.type == "cuda":
        import torch

        torch.set_float32_matmul_precision("high")
    return device


def _device(name: str) -> torch.device:  # noqa: F821
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ParamsError(f"unknown device '{name}' (use auto, cpu, cuda, cuda:N or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ParamsError(f"device '{name}' requested but CUDA is not available (use device: auto or cpu)")
    return device


# --- what runs on a GPU, decided here for every trainer ----------------------------------------------------------
# bf16 autocast and channels_last on CUDA only: on a CPU, bf16 kernels differ between processors (AMX,
# AVX512-BF16, or emulated) and would break "the same bytes on every CPU", and NHWC convolutions are slower there.
# fp32 matrix products on CUDA may use TF32 ("high"); the CPU keeps full fp32 ("highest", torch's default).
# SyncBatchNorm under DDP on CUDA is distributed.wrap's.


def autocast(device: torch.device, enabled: bool = True):  # noqa: F821
    """The trainers' mixed precision: bf16 autocast on CUDA (when `enabled`), a no-op context elsewhere."""
    import torch

    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def memory_format(device: torch.device, enabled: bool = True) -> torch.memory_format:  # noqa: F821
    """channels_last for a convolutional model on CUDA (tensor cores read NHWC), else the default layout."""
    import torch

    return torch.channels_last if enabled and device.type == "cuda" else torch.contiguous_format


def thread_count(task_threads: int, common_threads: int) -> int:
    """A task's own `threads` when set (> 0), else `common.threads`: both keys decide it, so both are declared."""
    return task_threads or common_threads


def set_threads(threads: int) -> None:
    if threads > 0:
        import torch

        torch.set_num_threads(threads)


# MKL's conditional-numerical-reproducibility branches (mkl_service.h): MKL_CBWR_AUTO, MKL_CBWR_COMPATIBLE,
# MKL_CBWR_AVX2, and what `machine()` calls each.
MKL_AUTO, MKL_COMPATIBLE, MKL_AVX2 = 2, 3, 10
MKL_BRANCHES = {"portable": MKL_COMPATIBLE, "fast": MKL_AVX2}
BRANCH_NAMES = {MKL_COMPATIBLE: "portable", MKL_AVX2: "fast", MKL_AUTO: "fast (MKL's choice)"}
MKL_UNSUPPORTED_BRANCH = -3  # MKL_CBWR_ERR_UNSUPPORTED_BRANCH: AVX2 asked for on a processor that is not Intel's
MKL_MODE_CHANGE_FAILURE = -8  # MKL_CBWR_ERR_MODE_CHANGE_FAILURE: MKL has already run
_kernels_set: list[str] = []  # the mode this process has set: asking for it again is a no-op


def _mkl() -> Any:
    """torch's MKL service functions (mkl_serv_cbwr_set / _get), or None where MKL is not there (not x86-64)."""
    import ctypes
    import platform
    from pathlib import Path

    import torch

    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkl.is_available():
        return None
    return ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))


def set_kernels(kernels: str) -> None:
    """`common.kernels`: which of MKL's code paths the sgemm and vector maths (exp, log, sqrt) of this process take.

    portable: MKL's COMPATIBLE branch, the same on Intel and AMD processors, so the same bytes on both
    (tests/test_cross_cpu.py checks it under an emulated AMD CPU). fast: MKL's AVX2 branch on Intel processors,
    several times faster for the matrix products of Transformers; MKL refuses that branch on other processors,
    which then get MKL's own choice for them (AUTO; before this fallback `fast` silently stayed COMPATIBLE on
    AMD: `python -m benchmarks.kernels_speed` measures both). So `fast` bytes hold on one processor model only.
    Convolutions (oneDNN) are unaffected either way. MKL fixes its branch at its first call: once it has run in
    one mode, asking for the other is an error; asking again for the mode already set is allowed (an ensemble's
    members, several runs in one process).
    """
    if _kernels_set == [kernels]:
        return
    lib = _mkl()
    if lib is None:
        return
    wanted = MKL_BRANCHES[kernels]
    answer = lib.mkl_serv_cbwr_set(wanted)
    if answer == MKL_UNSUPPORTED_BRANCH and wanted == MKL_AVX2:  # not an Intel processor: MKL's choice for it
        wanted = MKL_AUTO
        answer = lib.mkl_serv_cbwr_set(wanted)
    if answer == MKL_MODE_CHANGE_FAILURE and lib.mkl_serv_cbwr_get(1) != wanted:
        raise RuntimeError(f"common.kernels: {kernels} asked for after MKL already ran in another mode")
    _kernels_set[:] = [kernels]


def setup(seed: int, device: str = "auto", threads: int = 0, kernels: str = "portable") -> torch.device:
    """The start of every training or inference stage: MKL's kernels, seeds, thread count, device."""
    set_kernels(kernels)
    seed_everything(seed)
    set_threads(threads)
    return resolve_device(device)


def machine() -> dict[str, str | int]:
    """What made a timing: the CPU (vendor and model, from /proc/cpuinfo), the kernel pins and MKL's branch."""
    import platform

    import torch

    info: dict[str, str | int] = {"machine": platform.machine(), "threads": torch.get_num_threads()}
    try:
        first_cpu = open("/proc/cpuinfo", encoding="utf-8").read().split("\n\n")[0].splitlines()
        lines = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first_cpu)}
        fields = ("vendor_id", "model name", "cpu family", "model")
        info.update({k.replace(" ", "_"): lines[k] for k in fields if k in lines})
    except OSError:
        pass
    for var in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR"):
        info[var] = os.environ.get(var, "")
    lib = _mkl()
    if lib is not None:
        info["kernels"] = BRANCH_NAMES.get(lib.mkl_serv_cbwr_get(1), "other")
    return info


def write_timings(path: str | os.PathLike, timings: dict) -> None:
    """A stage's wall-clock figures (a DVC out, never a metric), with the machine that made them."""
    from stages.common.io import write_json

    write_json(path, {**timings, "machine": machine()})
