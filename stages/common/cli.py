"""Entry point shared by every stage module: load params, run, turn known errors into one clear line.

With `STAGES_RECORD_PARAMS=<folder>` set, the run also writes `<folder>/<module> <args>.json`: the params
keys the stage read (`stages.common.params.recording`), for the contract test to compare with dvc.yaml.
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


def main(run: Callable[[], object]) -> None:
    """Call `run()`; bad input or bad params exit with status 1 and one message, no traceback."""
    try:
        if os.environ.get(RECORD_ENV):
            with params.recording() as keys:
                run()
            write_record(Path(os.environ[RECORD_ENV]), keys)
        else:
            run()
    except (DataError, ParamsError) as err:
        if os.environ.get("RANK", "0") == "0":  # under torchrun every rank fails alike: one line, rank 0's
            print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # the user's Ctrl-C, not a bug: one line, and what it cost (nothing written)
        print("\nerror: interrupted; outputs left as they were (a trainer resumes from its last checkpoint)",
              file=sys.stderr)  # fmt: skip
        sys.exit(130)


def write_record(folder: Path, keys: set[str]) -> None:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    argv = [spec.name if spec else sys.argv[0], *sys.argv[1:]]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (" ".join(argv) + ".json")).write_text(json.dumps({"argv": argv, "keys": sorted(keys)}, indent=1))
