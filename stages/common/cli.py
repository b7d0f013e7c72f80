"""Entry point shared by every stage module: load params, run, turn known errors into one clear line."""

from __future__ import annotations

import sys
from collections.abc import Callable

from stages.common.io import DataError
from stages.common.params import ParamsError


def main(run: Callable[[], object]) -> None:
    """Call `run()`; bad input or bad params exit with status 1 and one message, no traceback."""
    try:
        run()
    except (DataError, ParamsError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
