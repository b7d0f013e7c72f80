"""The README's figures are the ones in the files they cite, and its links lead somewhere.

Citation syntax. A figure in README.md, docs/*.md or stages/*/README.md is a Markdown link whose text is
the figure and whose target is the file it comes from, the fragment saying where in that file:

    [0.775](metrics/pokemon.json#/pdr)                      JSON: an RFC 6901 pointer into the file
    [0.85](stages/pokemon/config.py#/BASELINES/strong/1)    Python: a module-level literal (read with ast,
                                                            nothing imported), then a pointer into it
    [0.72](plots/x.csv#/model=cnn/accuracy)                 CSV: the row whose `model` cell is `cnn`, its
                                                            `accuracy` cell
    [66.0 ± 1.2](stages/pokemon/README.md#measured)         Markdown: the text appears, as a whole, in the
                                                            section under that heading (a figure typed by
                                                            hand where no tracked file holds it yet)

A figure is link text that starts with a number. Against a JSON, Python or CSV value it must be one
number; the value is formatted with as many decimals as the figure shows (as the reports format theirs)
and the two strings must be equal, so 1.0407 may be shown as 1.041 or 1.04 but not as 1.05 (a value
exactly half-way may be rounded either up, as by hand, or as Python's f-string does).
Every figure is its own test case, named by file, line, figure and citation: when the metrics are
regenerated, the failures say exactly which figure drifted and what the file holds now.

The README states no other figure: a decimal number in its prose (outside code, outside a figure link)
fails `test_readme_prose_states_no_uncited_figure`.
"""

from __future__ import annotations

import ast
import csv
import json
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+)\)|!\[([^\]]*)\]\(([^)\s]+)\)")
FIGURE = re.compile(r"^[−-]?\d")
NUMBER = re.compile(r"^-?\d{1,3}(?:,\d{3})*(?:\.\d+)?$|^-?\d+(?:\.\d+)?$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_files(root: Path = ROOT) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "stages").glob("*/README.md"))]


@dataclass(frozen=True)
class Link:
    file: Path
    line: int
    text: str
    target: str

    @property
    def where(self) -> str:
        try:
            name = self.file.relative_to(ROOT)
        except ValueError:
            name = self.file
        return f"{name}:{self.line}"


def prose_lines(path: Path):
    """(line number, text) of every line outside fenced code blocks, with inline code spans blanked."""
    fenced = False
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            yield number, re.sub(r"`[^`]*`", lambda m: " " * len(m.group(0)), line)


def links(path: Path) -> list[Link]:
    found = []
    for number, line in prose_lines(path):
        for m in LINK.finditer(line):
            text, target = (m.group(1), m.group(2)) if m.group(2) else (m.group(3), m.group(4))
            found.append(Link(path, number, text.strip(), target))
    return found


def is_relative(target: str) -> bool:
    return not re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def sections(path: Path) -> dict[str, str]:
    """Anchor -> the text of that heading's section (its subsections included)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    headings, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and (m := HEADING.match(line)):
            headings.append((i, len(m.group(1)), m.group(2)))
    out, seen = {}, {}
    for n, (i, level, title) in enumerate(headings):
        end = next((j for j, lv, _ in headings[n + 1 :] if lv <= level), len(lines))
        anchor = slug(title)
        if anchor in seen:
            seen[anchor] += 1
            anchor = f"{anchor}-{seen[anchor]}"
        else:
            seen[anchor] = 0
        out[anchor] = "\n".join(lines[i:end])
    return out


def resolve(link: Link) -> tuple[Path, str]:
    path, _, fragment = link.target.partition("#")
    return (link.file.parent / path if path else link.file), fragment


def pointer_tokens(fragment: str) -> list[str]:
    if not fragment.startswith("/"):
        raise ValueError(f"'#{fragment}' is not a pointer (it must start with '/')")
    return [t.replace("~1", "/").replace("~0", "~") for t in fragment[1:].split("/")]


def walk(value, tokens: list[str], file: str):
    for n, token in enumerate(tokens):
        here = "/" + "/".join(tokens[: n + 1])
        if isinstance(value, dict):
            keys = {str(k): k for k in value}
            if token not in keys:
                raise KeyError(f"{file} has no {here} (keys there: {', '.join(sorted(keys)) or 'none'})")
            value = value[keys[token]]
        elif isinstance(value, list | tuple):
            if not token.isdigit() or int(token) >= len(value):
                raise KeyError(f"{file} has no {here} (a list of {len(value)})")
            value = value[int(token)]
        else:
            raise KeyError(f"{file} has no {here} ({'/'.join(tokens[:n]) or 'the root'} is {value!r})")
    return value


def python_literal(path: Path, name: str):
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets = (
            node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        if any(isinstance(t, ast.Name) and t.id == name for t in targets) and node.value is not None:
            return ast.literal_eval(node.value)
    raise KeyError(f"{path.name} assigns no module-level literal {name}")


def csv_cell(path: Path, tokens: list[str]):
    if len(tokens) != 2 or "=" not in tokens[0]:
        raise ValueError("a CSV citation is #/<column>=<value>/<column>")
    key, _, wanted = tokens[0].partition("=")
    with path.open(newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r.get(key) == wanted]
    if len(rows) != 1:
        raise KeyError(f"{path.name} has {len(rows)} rows with {key} = {wanted}, not 1")
    if tokens[1] not in rows[0]:
        raise KeyError(f"{path.name} has no column {tokens[1]}")
    return float(rows[0][tokens[1]])


def cited_value(path: Path, fragment: str):
    tokens = pointer_tokens(fragment)
    if path.suffix == ".json":
        return walk(json.loads(path.read_text(encoding="utf-8")), tokens, path.name)
    if path.suffix == ".py":
        return walk(python_literal(path, tokens[0]), tokens[1:], f"{path.name}:{tokens[0]}")
    if path.suffix == ".csv":
        return csv_cell(path, tokens)
    raise ValueError(f"cannot cite a figure in a {path.suffix} file")


def check_figure(link: Link) -> str | None:
    """None when the figure is the one its citation holds; else what is wrong, in one line."""
    path, fragment = resolve(link)
    shown = link.text.replace("−", "-")
    where = f"{link.where}: shows {link.text}, cites {link.target}"
    if not path.is_file():
        return f"{where}: no such file"
    if path.suffix == ".md":
        text = path.read_text(encoding="utf-8")
        if fragment:
            found = sections(path)
            if fragment not in found:
                return f"{where}: no heading with that anchor"
            text = found[fragment]
        whole = re.compile(r"(?<![\w.])" + re.escape(link.text) + r"(?![\w]|\.\d)")
        return None if whole.search(text) else f"{where}: that section does not state it"
    if not NUMBER.match(shown):
        return f"{where}: a figure cited from a {path.suffix} file must be one number"
    if not fragment:
        return f"{where}: the citation names no key (add #/<pointer>)"
    try:
        value = cited_value(path, fragment)
    except (KeyError, ValueError, SyntaxError) as e:
        return f"{where}: {e.args[0] if e.args else e}"  # a KeyError's str() would add quotes
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{where}: the file holds {value!r}, not a number"
    decimals = len(shown.partition(".")[2])
    # as an f-string formats it (what the reports print) or rounded half up from its decimal form (by hand)
    ways = {f"{value:.{decimals}f}", str(Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), ROUND_HALF_UP))}
    if f"{Decimal(shown.replace(',', '')):.{decimals}f}" not in ways:
        return f"{where}: the file holds {value!r}, shown with {decimals} decimals {' or '.join(sorted(ways))}"
    return None


def figure_links(root: Path = ROOT) -> list[Link]:
    return [link for f in markdown_files(root) for link in links(f) if FIGURE.match(link.text)]


FIGURES = figure_links()


def test_the_readme_cites_figures():
    in_readme = [f for f in FIGURES if f.file == ROOT / "README.md"]
    assert len(in_readme) >= 20, "the README's task table should link each figure to the file it comes from"
    tracked = [f for f in in_readme if resolve(f)[0].suffix == ".json"]
    assert tracked, "no README figure cites a metrics or results JSON"


@pytest.mark.parametrize("link", FIGURES, ids=[f"{f.where} {f.text} <- {f.target}" for f in FIGURES])
def test_figure_equals_its_source(link):
    problem = check_figure(link)
    assert problem is None, problem


def test_relative_links_resolve():
    problems = []
    for f in markdown_files():
        for link in links(f):
            if not is_relative(link.target):
                continue
            path, fragment = resolve(link)
            if not path.exists():
                problems.append(f"{link.where}: {link.target}: no such file")
            elif fragment and path.suffix == ".md" and fragment not in sections(path):
                problems.append(f"{link.where}: {link.target}: no heading with that anchor")
    assert not problems, "\n".join(problems)


def test_readme_prose_states_no_uncited_figure():
    problems = []
    for number, line in prose_lines(ROOT / "README.md"):
        bare = LINK.sub(lambda m: " " * len(m.group(0)) if FIGURE.match(m.group(1) or "") else (m.group(1) or ""), line)
        bare = re.sub(r"Python \d+\.\d+", "", bare)
        for m in re.finditer(r"(?<![\w.-])\d+\.\d+(?![\w.-])|\d+(?:\.\d+)?\s?%", bare):
            problems.append(f"README.md:{number}: {m.group(0)} is not a link to the file it comes from")
    assert not problems, "\n".join(problems)


def test_readme_shows_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = [line.strip() for line in ci if "-m pytest" in line and not line.lstrip().startswith("#")]
    assert len(command) == 1, f".ci/run should run one pytest command, found {command}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert command[0] in [line.strip() for line in readme], f"README.md does not show `{command[0]}`"


# The checker itself: a changed source must fail with a message that names the figure and the new value.


def _link(tmp_path: Path, text: str, target: str) -> Link:
    return Link(tmp_path / "README.md", 7, text, target)


def test_checker_reports_a_drifted_json_figure(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"a": {"fid": 58.289, "rows": [1.0407]}}))
    assert check_figure(_link(tmp_path, "58.29", "m.json#/a/fid")) is None
    assert check_figure(_link(tmp_path, "1.041", "m.json#/a/rows/0")) is None
    assert check_figure(_link(tmp_path, "1.04", "m.json#/a/rows/0")) is None
    problem = check_figure(_link(tmp_path, "1.05", "m.json#/a/rows/0"))
    assert problem and "README.md:7" in problem and "1.0407" in problem and "1.04" in problem
    problem = check_figure(_link(tmp_path, "0.28", "m.json#/a/pdr"))
    assert problem and "no /a/pdr" in problem and "fid" in problem


def test_checker_reads_python_literals_csv_cells_and_markdown_sections(tmp_path):
    (tmp_path / "config.py").write_text('import os\nBASELINES = {"strong": (73.0, 0.85)}\nBAR: float = 0.90\n')
    assert check_figure(_link(tmp_path, "73", "config.py#/BASELINES/strong/0")) is None
    assert check_figure(_link(tmp_path, "0.90", "config.py#/BAR")) is None
    assert "0.85" in check_figure(_link(tmp_path, "0.86", "config.py#/BASELINES/strong/1"))
    (tmp_path / "t.csv").write_text("model,accuracy\ncnn,0.7575\nvit,0.5\n")
    assert check_figure(_link(tmp_path, "0.758", "t.csv#/model=cnn/accuracy")) is None
    assert check_figure(_link(tmp_path, "0.76", "t.csv#/model=vit/accuracy")) is not None
    (tmp_path / "task.md").write_text("# task\n\n## Measured\nFID **66.0 ± 1.2**\n\n## Other\n0.5\n")
    assert check_figure(_link(tmp_path, "66.0 ± 1.2", "task.md#measured")) is None
    assert "does not state" in check_figure(_link(tmp_path, "0.5", "task.md#measured"))
    assert "does not state" in check_figure(_link(tmp_path, "6.0", "task.md#measured"))
    assert "no heading" in check_figure(_link(tmp_path, "0.5", "task.md#results"))
