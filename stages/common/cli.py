"""Entry point shared by every stage module: load params, run, turn known errors into one clear line.

With `STAGES_RECORD_PARAMS=<folder>` set, the run also writes `<folder>/<module> <args>.json`: the params
keys the stage read (`stages.common.params.recording`), for the contract test to compare with dvc.yaml.
With `STAGES_PROFILE=<folder>` set, it writes `<folder>/<stage>.json`: wall time since the process
started (imports included), CPU time and peak memory, read by `benchmarks/pipeline_profile.py`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from stages.common import params
from stages.common.io import DataError
from stages.common.params import ParamsError

RECORD_ENV = "STAGES_RECORD_PARAMS"
PROFILE_ENV = "STAGES_PROFILE"


def main(run: Callable[[], object]) -> None:
    """Call `run()`; bad input or bad params (see `user_message`) exit with status 1 and one message, no traceback;
    Ctrl-C exits with 130."""
    if os.environ.get(PROFILE_ENV) and not os.environ.get("WORLD_SIZE"):  # torchrun's ranks: their launcher records
        import atexit

        atexit.register(write_profile, Path(os.environ[PROFILE_ENV]))
    try:
        if os.environ.get(RECORD_ENV):
            with params.recording() as keys:
                run()
            write_record(Path(os.environ[RECORD_ENV]), keys)
        else:
            run()
    except Exception as err:
        message = user_message(err)
        if message is None:
            raise  # a bug: its traceback stays visible
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike: one line, rank 0's
            print(f"error: {message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # the user's Ctrl-C, not a bug: one line, and what it cost (nothing written)
        print("\nerror: interrupted; outputs left as they were (a trainer resumes from its last checkpoint)",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)


def user_message(err: Exception) -> str | None:
    """The one line for an error the user can act on: bad input or params; as the last line of defence, an
    OSError naming a file (a folder they cannot write, a disk that is full) and an image over PIL's size limit.
    None for anything else: a bug, which keeps its traceback."""
    if isinstance(err, (DataError, ParamsError)):
        return str(err)
    if isinstance(err, OSError) and err.filename is not None:
        return f"{err.filename}: {err.strerror or err}"
    image = sys.modules.get("PIL.Image")  # only a process that imported PIL can have hit its limit
    if image is not None and isinstance(err, image.DecompressionBombError):
        return f"image too large ({err})"
    return None


def write_record(folder: Path, keys: set[str]) -> None:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    argv = [spec.name if spec else sys.argv[0], *sys.argv[1:]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (" ".join(argv) + ".json")).write_text(json.dumps({"argv": argv, "keys": sorted(keys)}, indent=1))


def stage_name() -> str:
    """The dvc.yaml name of the running stage: `stages.coco_caption.train h2` -> `coco-caption-train@h2`."""
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    module = spec.name if spec else Path(sys.argv[0]).stem
    name = "-".join(module.split(".")[1:]).replace("_", "-")
    return f"{name}@{sys.argv[1]}" if len(sys.argv) > 1 else name


def write_profile(folder: Path) -> None:
    """Wall time since this process started, CPU seconds (its own and its children's), peak RSS."""
    import resource
    import time

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    try:  # Linux: the process's start, in clock ticks after boot, against the uptime
        ticks = int(Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19])
        wall = float(Path("/proc/uptime").read_text().split()[0]) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        wall = time.process_time()  # elsewhere: a lower bound
    record = {
        "stage": stage_name(),
        "wall_s": round(wall, 2),
        "cpu_s": round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 2),
        "peak_rss_mb": round(max(own.ru_maxrss, kids.ru_maxrss) / 1024, 1),  # ru_maxrss is in KiB on Linux
        "finished": time.time(),
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{record['stage']}.json").write_text(json.dumps(record, indent=1))
