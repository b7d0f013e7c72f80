"""Judge recorded runs' completions again with one detector: every row of a table moves by the same instrument.

    python -m stages.pokemon.rejudge DETECTOR RECORD [RECORD ...] [--out measured/pokemon_rejudged.json]

DETECTOR is an experiment (or commit) whose pokemon-classifier ran; each RECORD is a measured/pokemon_*.json of
stages/common/record.py. For every run of a record, its completions (data/pokemon/predictions) and prepared data
are read from the DVC cache through the run's dvc.lock, and the detector's PDR of the test completions, of the dev
completions and of the real dev sprites is computed as pokemon-evaluate computes it; FID does not depend on the
detector and is kept from the record, so the strong baseline is judged again with the new PDR. The table goes to
`--out` with the command, date and machine, and per record the PDR's mean and std over its runs and how many pass
the strong baseline. Nothing is trained or sampled.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from stages.common.cli import main
from stages.common.io import DataError, read_json, write_json
from stages.common.record import RecordError, cached, resolve, show, summarise


def lock_outs(root: Path, rev: str) -> dict[str, str]:
    """Every output path of the commit `rev`'s dvc.lock, with its md5."""
    lock = yaml.safe_load(show(root, rev, "dvc.lock")) or {}
    return {o["path"]: o["md5"] for entry in (lock.get("stages") or {}).values() for o in entry.get("outs", [])}


def materialize(root: Path, rev: str, outs: dict[str, str], out: str, dest: Path) -> Path:
    """The output `out` of a commit's dvc.lock (`outs`: lock_outs of `rev`), copied from the DVC cache to
    dest/<its name>."""
    if out not in outs:
        raise DataError(f"{rev[:7]}: its dvc.lock has no output {out}")
    md5, target = outs[out], dest / Path(out).name
    if not cached(root, md5).is_file():
        raise DataError(f"{rev[:7]}: {out} is not in the DVC cache (dvc exp pull, or run it again)")
    if not md5.endswith(".dir"):
        shutil.copyfile(cached(root, md5), target)
        return target
    for item in json.loads(cached(root, md5).read_text(encoding="utf-8")):
        (target / item["relpath"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached(root, item["md5"]), target / item["relpath"])
    return target


def rejudge(root: Path, detector: str, records: list[Path]) -> dict:
    import torch

    from stages.pokemon import config, pdr
    from stages.pokemon.data import load_prepared, read_pixels

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        judge_rev = resolve(root, detector)
        model = "models/pokemon/classifier.pt"
        judge = pdr.load(materialize(root, judge_rev, lock_outs(root, judge_rev), model, Path(tmp)))
        for record in records:
            for run in read_json(record)["runs"]:
                scratch = Path(tmp) / run["commit"]
                scratch.mkdir()
                outs = lock_outs(root, run["commit"])
                data = load_prepared(materialize(root, run["commit"], outs, "data/pokemon/prepared", scratch))
                predictions = materialize(root, run["commit"], outs, "data/pokemon/predictions", scratch)
                palette, was = data["palette"], run["metrics"]["pokemon"]
                test = read_pixels(predictions / "test.txt", len(palette), len(data["test_prefix"]))
                dev = read_pixels(predictions / "dev.txt", len(palette), len(data["dev"]))
                now = {
                    "pdr": pdr.detection_rate(*judge, test, palette),
                    "pdr_dev": pdr.detection_rate(*judge, dev, palette),
                    "pdr_real_dev": pdr.detection_rate(*judge, data["dev"], palette),
                }
                rows.append({
                    "record": record.name, "experiment": run["experiment"], "commit": run["commit"],
                    "varied": run.get("varied", {}), "fid": was["fid"],
                    "recorded": {k: was[k] for k in (*now, "passes_strong") if k in was},
                    "now": {**now, "passes_strong": config.passes("strong", was["fid"], now["pdr"])},
                })  # fmt: skip
    summary = {
        name: {
            "pdr": summarise([r["now"]["pdr"] for r in rows if r["record"] == name]),
            "passes_strong": {
                "true": sum(r["now"]["passes_strong"] for r in rows if r["record"] == name),
                "n": sum(r["record"] == name for r in rows),
            },
        }
        for name in dict.fromkeys(r["record"] for r in rows)
    }
    return {"detector": {"experiment": detector, "commit": judge_rev}, "rows": rows, "summary": summary}


def run(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m stages.pokemon.rejudge", description=__doc__.split("\n\n")[0])
    ap.add_argument("detector")
    ap.add_argument("records", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=Path("measured/pokemon_rejudged.json"))
    args = ap.parse_args(argv)
    from stages.common.runtime import machine

    try:
        result = rejudge(Path.cwd(), args.detector, args.records)
    except RecordError as err:
        raise DataError(str(err)) from None
    result = {
        "what": "recorded runs' completions judged again by one PDR detector (FID unchanged)",
        "command": "python -m stages.pokemon.rejudge " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.date.today().isoformat(),
        "machine": machine(),
        **result,
    }
    write_json(args.out, result)
    for r in result["rows"]:
        print(f"{r['experiment']}: PDR {r['recorded'].get('pdr')} -> {r['now']['pdr']}, real dev "
              f"{r['recorded'].get('pdr_real_dev')} -> {r['now']['pdr_real_dev']}, strong {r['now']['passes_strong']}")  # fmt: skip
    return result


if __name__ == "__main__":
    main(lambda: run())
