"""Share finished stages through a DVC remote: `dvc push --run-cache`, plus what DVC 3 leaves behind.

DVC keeps a record of every stage run (`.dvc/cache/runs`: the hashes of its deps, params and
outs) and a copy of every out in the cache, `cache: false` outs (metrics, plot CSVs and PNGs)
included. `dvc push --run-cache` uploads the records and the *cached* outs named in `dvc.lock`,
but not those `cache: false` copies. A machine that restores a stage from a record
(`dvc repro --pull`) then misses them and runs the stage again. This pushes, after DVC's own
push, the objects that every local run record names, so that `dvc repro --pull` on another
machine restores each stage that ran here instead of re-running it.

    python -m stages.common.runcache push [-r REMOTE] [-j JOBS]
    python -m stages.common.runcache status       # run records and their objects here / on the remote

Imports DVC inside the functions: no stage imports this module.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def local_entries(repo: Any) -> list[tuple[str, str]]:
    """(key, value) of every run record in this repo's cache: `runs/<key[:2]>/<key>/<value>`."""
    runs = Path(repo.stage_cache.cache_dir)
    if not runs.is_dir():
        return []
    return sorted((f.parent.name, f.name) for f in runs.glob("*/*/*") if f.is_file())


def record_objects(repo: Any) -> set[Any]:
    """Hash infos of every object the local run records name (folder trees expanded)."""
    objs: set[Any] = set()
    for odb_objs in repo.stage_cache.get_used_objs(local_entries(repo)).values():
        objs |= odb_objs
    return objs


def push(root: str | Path = ".", remote: str | None = None, jobs: int | None = None) -> dict[str, int]:
    """`dvc push --run-cache`, then the objects of every local run record; counts of what was sent."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        dvc_pushed = repo.push(run_cache=True, remote=remote, jobs=jobs)
        records = local_entries(repo)
        objs = record_objects(repo)
        result = repo.cloud.push(objs, jobs=jobs, remote=remote)
    if result.failed:
        names = sorted(getattr(o, "obj_name", None) or o.value for o in result.failed)
        raise RuntimeError(f"{len(result.failed)} objects could not be pushed: {', '.join(names[:10])}")
    return {
        "dvc_push_files": dvc_pushed,
        "run_records": len(records),
        "record_objects": len(objs),
        "record_objects_sent": len(result.transferred),
    }


def status(root: str | Path = ".", remote: str | None = None) -> dict[str, int]:
    """Run records here, the objects they name, and how many of those the remote lacks."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        records = local_entries(repo)
        values = {o.value for o in record_objects(repo)}
        odb = repo.cloud.get_remote_odb(remote, "status")
        on_remote = set(odb.oids_exist(sorted(values)))
    return {"run_records": len(records), "record_objects": len(values), "missing_on_remote": len(values - on_remote)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.common.runcache", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["push", "status"])
    parser.add_argument("-r", "--remote", default=None, help="DVC remote (default: the default remote)")
    parser.add_argument("-j", "--jobs", type=int, default=None, help="parallel transfers")
    args = parser.parse_args(argv)
    from dvc.exceptions import DvcException

    try:
        if args.command == "push":
            counts = push(".", args.remote, args.jobs)
        else:
            counts = status(".", args.remote)
    except (DvcException, RuntimeError) as err:
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    print(" ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
