"""Data-parallel training under torchrun: the same stage module runs as one process or as N.

`common.nproc` > 1 makes a trainer re-run its own module under torchrun (`launch_if_needed`), so
dvc.yaml's `cmd` stays `python -m stages.<task>.train` and `dvc exp run -S common.nproc=2` just works;
a stage started by `torchrun` itself (on a GPU machine, say) finds `WORLD_SIZE` set and runs as that rank.

Each rank takes the strided share `batch[rank::world]` of every global batch the trainer draws, exactly
what `DistributedSampler(shuffle=False)` gives over the trainer's own permutation, without its padding:
N processes see the same global batches as one, and `DistributedDataParallel` averages the gradients, so
the model is the one process's model up to the order of float additions (and per-process BatchNorm
statistics on CPU). At one process every function here is the identity: results stay byte-identical.
Only rank 0 writes outputs, checkpoints and the MLflow run (`is_main`).
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stages.common.params import ParamsError

if TYPE_CHECKING:
    import torch

_rank, _world = 0, 1


def env_world() -> int:
    """The world size torchrun announced (`WORLD_SIZE`), or 0 when this process was not started by it."""
    return int(os.environ.get("WORLD_SIZE", "0") or 0)


def world() -> int:
    return _world


def rank() -> int:
    return _rank


def is_main() -> bool:
    return _rank == 0


def check_batch(batch_size: int, key: str, nproc: int) -> int:
    """The per-process batch (global / N); a ParamsError naming `key` unless N divides it."""
    n = env_world() or nproc
    if batch_size % n:
        raise ParamsError(f"parameter '{key}' is {batch_size}; with {n} processes it must be a multiple of {n}")
    return batch_size // n


def launch_if_needed(nproc: int) -> bool:
    """With nproc > 1 outside torchrun: run this stage's module under torchrun, N processes, and return
    True once they all succeeded (the caller returns at once; rank 0 wrote the outputs); exit with the
    failing rank's status otherwise (that rank printed its one `error:` line). False: train here."""
    if nproc <= 1 or env_world():
        return False
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    if spec is None or not spec.name.startswith("stages."):
        raise ParamsError(f"common.nproc is {nproc}: run the stage as `python -m stages.<task>.<step>`")
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    # torchrun itself, in this process: `python -m torch.distributed.run --standalone --nproc_per_node=N -m ...`
    args = torchrun.parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m", spec.name, *sys.argv[1:]])
    for name in list(logging.Logger.manager.loggerDict):  # the ranks report; the agent's own log repeats them
        if name.startswith("torch.distributed"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # what torchrun sets (with a warning); stages set their own
    try:
        torchrun.run(args)
    except ChildFailedError as err:
        codes = [f.exitcode for _, f in sorted(err.failures.items())]
        sys.exit(next((c for c in codes if c and c > 0), 1))
    except SignalException:  # Ctrl-C or SIGTERM: torchrun stopped the ranks; cli.main says so in one line
        raise KeyboardInterrupt from None
    return True


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group (nccl on CUDA, gloo on CPU); the device this rank trains on.

    Outside torchrun, or a world of one, nothing happens and `device` comes back unchanged."""
    global _rank, _world
    if env_world() <= 1:
        return device
    import torch
    import torch.distributed as dist

    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        device = torch.device("cuda")  # the current device, this rank's own
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(cleanup)
    _rank, _world = dist.get_rank(), dist.get_world_size()
    if _rank:  # rank 0 prints the progress; the others would repeat it (their errors still reach stderr)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of this process
    return device


def cleanup() -> None:
    global _rank, _world
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    _rank, _world = 0, 1


@contextlib.contextmanager
def private_dir(path: str | Path) -> Iterator[Path]:
    """A rank's scratch stand-in for `atomic_path(path)` (what it builds is its own and then removed)."""
    path = Path(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.rank{_rank}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp / path.name
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def wrap(model: torch.nn.Module) -> torch.nn.Module:
    """`model` in DistributedDataParallel when world > 1 (SyncBatchNorm on CUDA); else `model` itself.

    Train through the wrapper; evaluate and save the plain `model` (same weights, no collectives)."""
    if _world == 1:
        return model
    import torch
    from torch.nn.parallel import DistributedDataParallel

    device = next(model.parameters()).device
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index], gradient_as_bucket_view=True)
    return DistributedDataParallel(model, gradient_as_bucket_view=True)  # grads live in the all-reduce buckets


def shard(batch: torch.Tensor) -> tuple[torch.Tensor, float]:
    """This rank's share of a global batch (indices or samples) and the weight of its mean loss.

    The weight (local size × world / global size; 1 for equal shares) makes DDP's gradient average the
    global batch's mean gradient also when the last batch does not split evenly; a rank left without any
    sample trains on the batch's first one with weight 0, so that every rank takes part in the all-reduce."""
    if _world == 1:
        return batch, 1.0
    local = batch[_rank::_world]
    if len(local) == 0:
        return batch[:1], 0.0
    return local, len(local) * _world / len(batch)


def weighted(loss: torch.Tensor, weight: float) -> torch.Tensor:
    return loss if weight == 1.0 else loss * weight


def all_reduce_sum(*values: float) -> tuple[Any, ...]:
    """The sums over ranks of per-rank numbers (loss sums, counts): ints stay ints. Identity at one process."""
    if _world == 1:
        return values
    import torch
    import torch.distributed as dist

    summed = torch.tensor([float(v) for v in values], dtype=torch.float64)
    dist.all_reduce(summed)
    return tuple(int(round(s)) if isinstance(v, int) else s for v, s in zip(values, summed.tolist(), strict=True))


def all_reduce_mean(value: float) -> float:
    """The mean over ranks of a per-rank number (each rank's mean loss over an equal share)."""
    if _world == 1:
        return value
    (total,) = all_reduce_sum(float(value))
    return total / _world


def broadcast(obj: Any) -> Any:
    """Rank 0's `obj` on every rank (an epoch's validation row), so every rank takes the same decisions."""
    if _world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
