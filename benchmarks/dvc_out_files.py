"""How many files each folder output of the pipeline holds: DVC hashes, caches and transfers every file of a
folder out one by one (one remote object each), so thousands of small files make `dvc push`/`pull`/`status` slow.

    python benchmarks/dvc_out_files.py [REPO] [--limit 1000]

Reads the outs of every stage (matrix stages expanded) through DVC's own index, counts the files of those that
are folders in REPO's workspace (run the pipeline first), prints one line per folder out, largest first, and
exits 1 if any holds more than --limit files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def folder_outs(repo: Path) -> dict[str, tuple[int, int]]:
    """{out path: (files, bytes)} for every stage out that is a folder in the workspace."""
    from dvc.repo import Repo

    counts: dict[str, tuple[int, int]] = {}
    with Repo(str(repo)) as dvc_repo:
        for out in dvc_repo.index.outs:
            path = repo / out.def_path
            if path.is_dir():
                files = [f for f in path.rglob("*") if f.is_file()]
                counts[out.def_path] = (len(files), sum(f.stat().st_size for f in files))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo", nargs="?", default=".", type=Path)
    parser.add_argument("--limit", type=int, default=1000, help="most files a folder out may hold")
    args = parser.parse_args(argv)
    counts = folder_outs(args.repo.resolve())
    for path, (files, size) in sorted(counts.items(), key=lambda kv: -kv[1][0]):
        print(f"{files:7d} files {size / 1e6:9.2f} MB  {path}")
    over = [path for path, (files, _) in counts.items() if files > args.limit]
    print(f"{len(counts)} folder outs; over {args.limit} files: {', '.join(over) or 'none'}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
