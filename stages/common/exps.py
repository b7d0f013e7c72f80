"""One task's experiments, readable in a 120-column terminal: the params that differ and the task's headline
metrics with their run-to-run spread (measured/spreads.json); metrics, params diff and overlaid plots of two experiments of that task.

    python -m stages.common.exps <task> [show] [-n N | -A]             every experiment of the task side by side
    python -m stages.common.exps <task> diff A B [--all]                params and metrics of B against A
    python -m stages.common.exps <task> metrics                         the task's metrics, one per line
    python -m stages.common.exps <task> plots A B [...] [-o DIR]        the task's curves of A and B overlaid (HTML)

A and B are experiment names, git revisions or `workspace`. `dvc exp show` alone shows every param and metric
of every task (hundreds of columns) and names metric columns without their file (`fid` is pokemon's and ddpm's),
so `--drop`/`--keep` patterns cannot pick one task's headline metrics; this wrapper reads `dvc exp show --json`,
`dvc exp diff --json` and `dvc metrics show --json`, and keeps the params the task's stages (and the stages they
depend on) declare and the metrics files those stages write. It imports nothing heavy at the top: DVC's index
(which params and metrics belong to a task) is read inside the functions that need it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from stages.common.headlines import NOISE_STDS, SPREADS_FILE, Headline, headlines, spread_entry, spreads

WIDTH = 120
MAX_OTHERS = 25  # `diff` lists at most this many non-headline metrics unless --all
IGNORED_PARAMS = ("common.mlflow",)  # switches logging, changes no output


class ExpsError(Exception):
    """A bad task name, revision or a failing dvc command: one `error:` line, exit status 1."""


# ---------------------------------------------------------------- what belongs to a task


@dataclasses.dataclass
class TaskView:
    task: str
    param_keys: list[str]  # params the task's stages and their upstream stages declare (prefixes of dotted keys)
    metric_files: list[str]  # metrics files the task's stages write
    plot_ids: list[str]  # top-level plot ids of the task and the image plots its stages write
    headlines: tuple[Headline, ...]
    spreads: dict[str, float] = dataclasses.field(default_factory=dict)  # headline key -> measured std over seeds
    spread_note: str = ""  # where and how the spreads were measured (measured/spreads.json)


def spread_note(task: str, root: str = ".") -> str:
    entry = spread_entry(task, root)
    if not entry:
        return ""
    seeds = "/".join(map(str, entry.get("seeds") or []))
    return (
        f"± = run-to-run std over seeds {seeds} at {entry.get('scale', 'an unrecorded')} scale"
        f" ({SPREADS_FILE.as_posix()})"
    )


def task_view(task: str, root: str = ".") -> TaskView:
    """Read DVC's index of the repo at `root`: the task's stages are those named `<task>-<step>`."""
    import networkx as nx
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(root) as repo:
        stages = list(repo.index.stages)
        sections = _params_sections(repo.root_dir)
        owner = {s: task_of(s.name, sections) for s in stages}
        mine = [s for s in stages if owner[s] == task]
        if not mine:
            tasks = sorted({t for t in owner.values() if t})
            raise ExpsError(f"no stages of a task '{task}' in dvc.yaml (tasks: {', '.join(tasks)})")
        upstream = set(mine)
        graph = repo.index.graph
        for stage in mine:
            upstream |= set(nx.descendants(graph, stage))
        keys: list[str] = []
        for stage in sorted(upstream, key=lambda s: s.addressing):
            for dep in stage.deps:
                if isinstance(dep, ParamsDependency) and dep.def_path == "params.yaml":
                    keys += [k for k in (dep.params or []) if k not in keys]
        metric_files = sorted({o.def_path for s in mine for o in s.outs if o.metric})
        images = [o.def_path for s in mine for o in s.outs if o.plot and not o.def_path.endswith((".csv", ".json"))]
        top = [next(iter(p)) if isinstance(p, dict) else str(p) for p in _top_level_plots(repo.root_dir)]
    plot_ids = [p for p in top if p.startswith(f"{task} ")] + images
    return TaskView(task, keys, metric_files, plot_ids, headlines(task), spreads(task, root), spread_note(task, root))


def task_of(stage: str, tasks: Iterable[str]) -> str:
    """The task of a stage `<task>-<step>[@variant]`: the longest params section it starts with (`pokemon` for
    `pokemon-fid-reference`, `dip-ddpm` for `dip-ddpm-restore@dip`, never `ddpm`); "" when none."""
    return max((t for t in tasks if stage.startswith(f"{t}-")), key=len, default="")


def _params_sections(root: str) -> list[str]:
    import yaml

    path = os.path.join(root, "params.yaml")
    if not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    return [str(k) for k in data] if isinstance(data, dict) else []


def _top_level_plots(root: str) -> list[Any]:
    import yaml

    with open(os.path.join(root, "dvc.yaml"), encoding="utf-8") as f:
        return (yaml.safe_load(f) or {}).get("plots") or []


def belongs(key: str, prefixes: Iterable[str]) -> bool:
    return key not in IGNORED_PARAMS and any(key == p or key.startswith(p + ".") for p in prefixes)


# ---------------------------------------------------------------- dvc


def dvc(*args: str, root: str = ".") -> Any:
    """Run `dvc <args> --json` in `root`, return the parsed JSON; a failure is an ExpsError with dvc's message."""
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExpsError(f"dvc {' '.join(args[:2])}: {_dvc_message(proc.stderr)}")
    return json.loads(proc.stdout or "{}")


def _dvc_message(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip() and "Having any troubles" not in line]
    return " ".join(lines).replace("ERROR: ", "") or "failed"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def lookup(data: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


# ---------------------------------------------------------------- formatting


def fmt(value: Any, width: int = 16) -> str:
    if value is None:
        text = "–"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        text = "nan" if math.isnan(value) else f"{value:.4g}"
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, separators=(",", ":"))
    else:
        text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def table(header: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool] | None = None) -> list[str]:
    """Plain columns, two spaces apart; `right[i]` right-aligns column i (numbers)."""
    right = right or [False] * len(header)
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        parts = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)]
        return "  ".join(parts).rstrip()

    return [line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]


def terminal_width() -> int:
    if sys.stdout.isatty():
        return min(WIDTH, shutil.get_terminal_size((WIDTH, 24)).columns)
    return WIDTH


# ---------------------------------------------------------------- show


@dataclasses.dataclass
class Row:
    name: str
    params: dict[str, Any]
    metrics: dict[str, Any]  # file -> data
    baseline: str  # the name of the row this one is compared with ("" for a baseline itself)
    status: str = ""


def exp_rows(entries: list[dict[str, Any]], view: TaskView, workspace: bool = True) -> list[Row]:
    """The workspace, the first baseline commit (HEAD) and every other commit that has experiments, each
    followed by its experiments."""
    rows: list[Row] = []
    first = True
    for entry in entries:
        data = entry.get("data") or {}
        name = entry.get("name") or (entry.get("rev") or "?")[:7]
        if entry.get("rev") == "workspace":
            if workspace:
                rows.append(_row("workspace", data, "", entry))
            continue
        if not first and not entry.get("experiments"):
            continue
        first = False
        rows.append(_row(name, data, "", entry))
        for exp in entry.get("experiments") or []:
            revs = exp.get("revs") or [{}]
            rev = revs[0]
            exp_name = exp.get("name") or rev.get("name") or (rev.get("rev") or "?")[:7]
            row = _row(exp_name, rev.get("data") or {}, name, rev)
            state = (exp.get("executor") or {}).get("state")
            if state and state != "success":
                row.status = state
            rows.append(row)
    return rows


def _row(name: str, data: dict[str, Any], baseline: str, entry: dict[str, Any]) -> Row:
    params = flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})
    metrics = {f: (m or {}).get("data") or {} for f, m in (data.get("metrics") or {}).items()}
    return Row(name, params, metrics, baseline, "failed" if entry.get("error") else "")


def std_of(h: Headline, metrics: dict[str, Any], measured: dict[str, float]) -> float | None:
    """The revision's own std over its repeated runs where the task records one, else the measured spread."""
    if h.own_std:
        value = lookup(metrics.get(h.file) or {}, h.own_std)
        if _number(value):
            return value
    return measured.get(h.key)


def beyond_noise(h: Headline, a: Row, b: Row, measured: dict[str, float] | None = None) -> bool:
    measured = measured or {}
    va, vb = lookup(a.metrics.get(h.file) or {}, h.key), lookup(b.metrics.get(h.file) or {}, h.key)
    stds = [s for s in (std_of(h, a.metrics, measured), std_of(h, b.metrics, measured)) if s]
    if not stds or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb)):
        return False
    return abs(vb - va) > NOISE_STDS * max(stds)


def differing(rows: Sequence[Row], view: TaskView) -> list[str]:
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row.params if k not in keys and belongs(k, view.param_keys)]
    return [k for k in keys if len({json.dumps(r.params.get(k), sort_keys=True) for r in rows}) > 1]


def short(key: str, task: str) -> str:
    return key.removeprefix(f"{task}.")


def render_show(rows: list[Row], view: TaskView, width: int = WIDTH) -> list[str]:
    if not rows:
        return [f"{view.task}: no experiments"]
    keys = differing(rows, view)
    by_name = {r.name: r for r in rows if not r.baseline}
    heads = view.headlines
    n_exps = sum(1 for r in rows if r.baseline)
    out = [f"{view.task}: {n_exps} experiment(s); params that differ, headline metrics (* = beyond {NOISE_STDS:g} std "
           "of its baseline)"]  # fmt: skip
    if not keys:
        out.append("(no params differ between these rows)")

    def cells(row: Row) -> list[str]:
        base = by_name.get(row.baseline)
        values = [fmt(row.params.get(k), 14) for k in keys]
        for h in heads:
            text = fmt(lookup(row.metrics.get(h.file) or {}, h.key), 10)
            values.append(text + ("*" if base is not None and beyond_noise(h, base, row, view.spreads) else ""))
        return values

    names = [("  " if r.baseline else "") + r.name + (f" ({r.status})" if r.status else "") for r in rows]
    spreads = ["" for _ in keys] + [f"±{fmt(view.spreads[h.key], 9)}" if h.key in view.spreads else "" for h in heads]
    labels = [short(k, view.task) for k in keys] + [h.label for h in heads]
    # wide form: one row per experiment
    header = ["experiment", *labels]
    body = [[n, *cells(r)] for n, r in zip(names, rows, strict=True)]
    if any(spreads):
        body.insert(0, ["", *spreads])
    right = [False] + [False] * len(keys) + [True] * len(heads)
    lines = table(header, body, right)
    if max(len(line) for line in lines) > width:
        lines = _long_form(names, rows, labels, cells, spreads, width)
    out += lines
    if any(h.key in view.spreads for h in heads) and view.spread_note:
        out.append(view.spread_note)
    own = [h.label for h in heads if h.own_std]
    if own:
        out.append(f"{', '.join(own)}: * uses the std over the task's own repeated runs, in each revision's metrics")
    return out


def _long_form(names, rows, labels, cells, spreads, width: int) -> list[str]:
    """Too wide for one row per experiment: one row per param or metric, experiments as columns, in blocks."""
    per_row = [cells(r) for r in rows]
    label_w = min(28, max(len(x) for x in labels))
    col_w = 14
    fits = max(1, (width - label_w - 12) // (col_w + 2))
    lines: list[str] = []
    for start in range(0, len(rows), fits):
        cols = range(start, min(len(rows), start + fits))
        header = ["", *(fmt(names[i].strip(), col_w) for i in cols), "±std"]
        body = [[fmt(labels[j], label_w), *(per_row[i][j] for i in cols), spreads[j]] for j in range(len(labels))]
        if any(rows[i].baseline for i in cols):
            body.insert(0, ["(baseline)", *(fmt(rows[i].baseline, col_w) for i in cols), ""])
        if lines:
            lines.append("")
        lines += table(header, body, [False] + [True] * len(cols) + [False])
    return lines


def show(
    task: str, root: str = ".", all_commits: bool = False, workspace: bool = True, width: int = WIDTH, num: int = 1
) -> str:
    view = task_view(task, root)
    entries = dvc("exp", "show", "--json", *(["-A"] if all_commits else ["-n", str(num)]), root=root)
    return "\n".join(render_show(exp_rows(entries, view, workspace), view, width))


# ---------------------------------------------------------------- diff


def diff(task: str, a: str, b: str, root: str = ".", every: bool = False) -> str:
    view = task_view(task, root)
    data = dvc("exp", "diff", a, b, "--json", "--all", root=root)
    params = {k: v for k, v in ((data.get("params") or {}).get("params.yaml") or {}).items()}
    params = {k: v for k, v in params.items() if belongs(k, view.param_keys) and v.get("old") != v.get("new")}
    metrics = {f: m for f, m in (data.get("metrics") or {}).items() if f in view.metric_files}
    out = [f"{task}: {b} against {a}"]
    if params:
        out += ["", *table(["param", a, b], [[short(k, task), fmt(v.get("old"), 30), fmt(v.get("new"), 30)]
                                             for k, v in sorted(params.items())])]  # fmt: skip
    else:
        out += ["", f"no params of {task} differ"]
    rows = []
    for h in view.headlines:
        entry = (metrics.get(h.file) or {}).get(h.key) or {}
        old, new = entry.get("old"), entry.get("new")
        std = view.spreads.get(h.key)
        if h.own_std:
            stds = [(metrics.get(h.file) or {}).get(h.own_std, {}).get(s) for s in ("old", "new")]
            std = max((s for s in stds if _number(s)), default=std)
        change = new - old if _number(old) and _number(new) else None
        verdict = ""
        if change is not None and std:
            verdict = "beyond noise" if abs(change) > NOISE_STDS * std else "within noise"
            better = (change < 0) == h.lower_is_better
            verdict += f", {'better' if better else 'worse'}" if verdict == "beyond noise" and change else ""
        rows.append([h.label, fmt(old, 14), fmt(new, 14), _signed(change), f"±{fmt(std, 9)}" if std else "–", verdict])
    if rows:
        out += ["", *table(["headline", a, b, "change", "std", f"(noise: under {NOISE_STDS:g} std)"], rows,
                           [False, True, True, True, True, False])]  # fmt: skip
    shown = {(h.file, h.key) for h in view.headlines}
    others = []
    for file, entries in sorted(metrics.items()):
        for key, entry in sorted(entries.items()):
            if (file, key) in shown or not isinstance(entry, dict):
                continue
            if every or entry.get("old") != entry.get("new"):
                name = f"{file.removeprefix('metrics/').removesuffix('.json')}:{key}"
                numbers = _number(entry.get("old")) and _number(entry.get("new"))
                others.append([fmt(name, 56), fmt(entry.get("old"), 16), fmt(entry.get("new"), 16),
                               _signed(entry.get("diff")) if numbers else ""])  # fmt: skip
    label = "every other metric" if every else "other metrics that changed"
    if others:
        cut = len(others) - MAX_OTHERS if not every and len(others) > MAX_OTHERS else 0
        out += ["", *table([label, a, b, "change"], others[: len(others) - cut], [False, True, True, True])]
        if cut:
            out.append(f"… and {cut} more (--all: every metric, changed or not)")
    return "\n".join(out)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _signed(v: Any) -> str:
    return "" if v is None else ("+" if v > 0 else "") + fmt(v, 12)


# ---------------------------------------------------------------- metrics, plots


def metrics(task: str, root: str = ".") -> str:
    view = task_view(task, root)
    data = dvc("metrics", "show", "--json", *view.metric_files, root=root)
    rows = []
    for rev in data.values():
        for file, entry in sorted(((rev or {}).get("data") or {}).items()):
            for key, value in flatten((entry or {}).get("data") or {}).items():
                name = f"{file.removeprefix('metrics/').removesuffix('.json')}:{key}"
                rows.append([fmt(name, 80), fmt(value, 30)])
    if not rows:
        return f"{task}: no metrics yet (files: {', '.join(view.metric_files) or 'none declared'})"
    return "\n".join(table(["metric", "value"], rows, [False, True]))


def plots(task: str, revs: Sequence[str], root: str = ".", out: str = "", open_page: bool = False) -> str:
    view = task_view(task, root)
    if not view.plot_ids:
        raise ExpsError(f"no plots declared for task '{task}'")
    out = out or os.path.join("dvc_plots", task)
    os.makedirs(os.path.join(root, out), exist_ok=True)
    cmd = [sys.executable, "-m", "dvc", "plots", "diff", *revs, "--targets", *view.plot_ids, "-o", out]
    proc = subprocess.run(cmd + (["--open"] if open_page else []), cwd=root, capture_output=True, text=True)
    if proc.returncode != 0:
        raise ExpsError(f"dvc plots diff: {_dvc_message(proc.stderr)}")
    return f"{task}: {len(view.plot_ids)} plots of {', '.join(revs)} overlaid: {os.path.join(out, 'index.html')}"


# ---------------------------------------------------------------- command line


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stages.common.exps", description=__doc__.split("\n\n")[0])
    parser.add_argument("task")
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("show", help="every experiment of the task side by side (the default)")
    s.add_argument("-n", "--num", type=int, default=1, help="experiments of the last NUM commits (default 1: HEAD)")
    s.add_argument("-A", "--all-commits", action="store_true", help="experiments of every commit (slow: reads all)")
    s.add_argument("--no-workspace", action="store_true", help="leave out the workspace row")
    s.add_argument("--width", type=int, default=0, help=f"columns (default {WIDTH}, or the terminal's if narrower)")
    d = sub.add_parser("diff", help="params and metrics of B against A")
    d.add_argument("a")
    d.add_argument("b")
    d.add_argument("--all", action="store_true", help="every metric, not only those that changed")
    sub.add_parser("metrics", help="the task's metrics in the workspace, one per line")
    p = sub.add_parser("plots", help="the task's plots of two or more revisions overlaid, as an offline HTML page")
    p.add_argument("revs", nargs="+")
    p.add_argument("-o", "--out", default="", help="output folder (default dvc_plots/<task>)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "show"])
    return args


def run(argv: Sequence[str], root: str = ".") -> str:
    args = parse(argv)
    if args.command == "show":
        width = args.width or terminal_width()
        return show(args.task, root, args.all_commits, not args.no_workspace, width, args.num)
    if args.command == "diff":
        return diff(args.task, args.a, args.b, root, args.all)
    if args.command == "metrics":
        return metrics(args.task, root)
    return plots(args.task, args.revs, root, args.out, args.open)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        print(run(sys.argv[1:] if argv is None else argv))
    except ExpsError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
    except BrokenPipeError:  # `| head`: the reader has gone, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


if __name__ == "__main__":
    main()
