"""twolayer-package: reports/twolayer.md from the measured evaluation (reports/twolayer_detail.json), the recorded
`dvc exp` ablations (reports/twolayer_ablations.json) and the recorded real-data run
and the choice that led to it (measured/twolayer_real30*.json, recorded `dvc exp run`s). Wall-clock numbers of this
run stay in timings/*.json and are only pointed to; the recorded runs' training seconds are quoted from the record."""

from __future__ import annotations

import math
import statistics

from stages.common.cli import main
from stages.common.headlines import detail_path, spread_section, spreads
from stages.common.io import read_json, write_text
from stages.twolayer import config

REFERENCES = [
    "X. Wang et al., *ESRGAN: Enhanced Super-Resolution Generative Adversarial Networks*, ECCV Workshops 2018"
    " (the residual-in-residual dense block, residual scaling 0.2, small initialisation; the sheet's reference).",
    "A. Vaswani et al., *Attention Is All You Need*, NeurIPS 2017 (multi-head self-attention, pre-norm layers as in"
    " later work).",
    "A. Dosovitskiy et al., *An Image is Worth 16x16 Words*, ICLR 2021 (self-attention over image patches).",
    "A. Gulati et al., *Conformer: Convolution-augmented Transformer for Speech Recognition*, Interspeech 2020"
    " (one layer = convolution + self-attention + feed-forward modules, each with its skip).",
    "T. Xiao et al., *Early Convolutions Help Transformers See Better*, NeurIPS 2021 (a convolutional,"
    " overlapping patch embedding instead of a linear one).",
    "A. Trockman, J. Z. Kolter, *Patches Are All You Need?* (ConvMixer), TMLR 2023, and Z. Liu et al.,"
    " *A ConvNet for the 2020s* (ConvNeXt), CVPR 2022 (large depthwise kernels; the `conv` main layer).",
    "K. He et al., *Deep Residual Learning for Image Recognition*, CVPR 2016 (ResNet34, the reference;"
    " torchvision's implementation).",
    "K. Han et al., *Vision GNN: An Image is Worth Graph of Nodes*, NeurIPS 2022 (the sheet's GCN option; not tried).",
]


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _ablation_lines(abl: dict) -> list[str]:
    runs = abl.get("runs", [])
    if not runs:
        return ["No ablations recorded yet (run `python -m stages.twolayer.ablate`).", ""]
    lines = [
        f"Each row is one `dvc exp run -S ...` at sample scale ({abl.get('scale', 'sample')}), both models trained"
        " with the same overrides; recorded by `stages/twolayer/ablate.py` into"
        " `reports/twolayer_ablations.json`"
        + (
            ", with each experiment's name (in the row) and commit (`git show <commit>:dvc.lock` says what made it)"
            if any(r.get("experiment") for r in runs)
            else ""
        )
        + ". A variant is judged by its **validation** accuracy (the best epoch's);"
        " the test columns are shown for the record and were never used to choose.",
        "",
        "| variant | `-S` overrides | two-layer val | ResNet34 val | two-layer test | ResNet34 test | test ratio |"
        " two-layer params | two-layer GFLOPs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        over = " ".join(f"`{o}`" for o in r["overrides"]) or "(defaults)"
        name = f"{r['name']} (`{r['experiment']}`)" if r.get("experiment") else r["name"]
        lines.append(f"| {name} | {over} | {_pct(r['twolayer_val'])} | {_pct(r['resnet34_val'])} |"
                     f" {_pct(r['twolayer_test'])} | {_pct(r['resnet34_test'])} | {r['ratio']:.3f} |"
                     f" {r['twolayer_parameters']:,} | {r['twolayer_flops'] / 1e9:.4f} |")  # fmt: skip
    seeds = [r for r in runs if r.get("group") == "seed" or not r["overrides"]]  # the default under other seeds
    if len(seeds) >= 2:
        two = [r["twolayer_test"] for r in seeds]
        ref = [r["resnet34_test"] for r in seeds]
        rat = [r["ratio"] for r in seeds]
        lines += ["", f"Run-to-run spread over {len(seeds)} seeds of the default configuration (mean ± standard"
                  f" deviation): two-layer {_pct(statistics.mean(two))} ± {100 * statistics.stdev(two):.1f},"
                  f" ResNet34 {_pct(statistics.mean(ref))} ± {100 * statistics.stdev(ref):.1f},"
                  f" ratio {statistics.mean(rat):.3f} ± {statistics.stdev(rat):.3f}."]  # fmt: skip
    return [*lines, ""]


def _verdict(low: float, bar: float) -> str:
    """Whether an interval's lower end clears the sheet's bar (as the evaluation recorded it) and this project's 1.0."""
    return " and ".join(
        f"{'clears' if low >= b else 'does not clear'} {text}" for b, text in ((bar, f"{bar:g}"), (1.0, "1.0"))
    )


def _interval(center: float, test_half: float, seed_std: float, z: float) -> tuple[float, float]:
    """center ± √(test half-width² + (z·seed std)²): the test set's and the seeds' uncertainty as independent parts."""
    half = math.hypot(test_half, z * seed_std)
    return center - half, center + half


def ci_lines(m: dict, seed_std: float | None, seeds_from: str) -> list[str]:
    """The ratio's uncertainty: the test set's (paired bootstrap, from the evaluation) and, when measured, the
    seeds' (run-to-run std), combined as independent parts; whether each interval clears the bar and 1.0."""
    ci = m.get("ratio_ci")
    if not ci or m.get("ratio") is None:
        return []

    text = (f"Uncertainty: the {100 * ci['level']:g}% interval of the ratio from the test set alone ({ci['method']},"
            f" {ci['resamples']} resamples of the {m['test_images']} images) is [{ci['low']:.3f}, {ci['high']:.3f}]:"
            f" it {_verdict(ci['low'], m['bar'])}.")  # fmt: skip
    if seed_std is not None:
        z = statistics.NormalDist().inv_cdf(0.5 + ci["level"] / 2)
        low, high = _interval(m["ratio"], z * ci["std"], seed_std, z)
        text += (f" Adding the seeds' run-to-run std of the ratio ({seed_std:.3f}, {seeds_from}) as an independent"
                 f" part, ratio ± {z:.2f}·√(bootstrap std² + seed std²) = [{low:.3f}, {high:.3f}]: it {_verdict(low, m['bar'])}.")  # fmt: skip
    return [text, ""]


def _val(run: dict, model: str) -> float | None:
    """The model's best-epoch validation accuracy in a recorded run; None where the run did not train it (a
    candidate of the two-layer net alone: `dvc exp run twolayer-train@twolayer`)."""
    return (run["metrics"].get(f"twolayer_train_{model}") or {}).get("best_val_accuracy")


def _candidates(choice: dict) -> dict[str, list[dict]]:
    """The record's runs grouped by the params they differ in, seeds aside: one group per candidate."""
    groups: dict[str, list[dict]] = {}
    for r in choice.get("runs", []):
        label = ", ".join(f"`{k}={v}`" for k, v in r["varied"].items() if not k.endswith(".seed"))
        groups.setdefault(label or "(one candidate)", []).append(r)
    return groups


def _train_seconds(run: dict) -> float:
    """The longest training seconds of the models the recorded run trained (inf when a time is not recorded)."""
    timed = [
        (run["timings"].get(f"twolayer-train-{x}") or {}).get("train_seconds")
        for x in config.MODELS
        if _val(run, x) is not None
    ]
    return max((math.inf if t is None else t for t in timed), default=math.inf)


def _within_budget(runs: list[dict]) -> bool:
    return all(_train_seconds(r) <= 60 * config.BUDGET_MINUTES for r in runs)


def chosen(choice: dict) -> str | None:
    """Among the candidates whose every run trained each model within the budget, the one with the highest mean
    best-epoch validation accuracy of the two-layer net; None when no candidate fits the budget."""
    groups = {k: g for k, g in _candidates(choice).items() if _within_budget(g)}
    return max(groups, key=lambda g: statistics.mean(_val(r, "twolayer") for r in groups[g])) if groups else None


def _choice_lines(rounds: list[dict]) -> list[str]:
    rounds = [c for c in rounds if _candidates(c)]
    if not rounds:
        return [f"No recorded choice yet (`{config.Paths().real_choices[0].name}`).", ""]
    lines = [
        "**How the preset was chosen: on validation only, within the budget.** Each candidate is a `dvc exp run`"
        " of the preset with the `-S` overrides shown, at each seed, in rounds: each round's candidates start from"
        " the earlier rounds' winners. The kept weights of each run are its best epoch by validation accuracy."
        f" Among the candidates whose runs trained each model within {config.BUDGET_MINUTES} minutes, the one with"
        " the highest mean validation accuracy of the two-layer net wins. A run of the two-layer net alone"
        " (`dvc exp run ... twolayer-train@twolayer`: ResNet34 does not change) has no ResNet34 column. The test"
        " accuracies of these runs, where scored, are in the records and were not used to choose.",
        "",
    ]
    for n, choice in enumerate(rounds, 1):
        lines += [
            f"Round {n}, recorded by `{choice['command']}`:",
            "",
            "| candidate | experiments | two-layer best val per seed | mean | ResNet34 best val per seed |"
            " longest training per run, s | within budget |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, runs in _candidates(choice).items():
            lines.append(f"| {label} | {', '.join(r['experiment'] for r in runs)} |"
                         f" {', '.join(_pct(_val(r, 'twolayer')) for r in runs)} |"
                         f" {_pct(statistics.mean(_val(r, 'twolayer') for r in runs))} |"
                         f" {', '.join(_pct(v) if (v := _val(r, 'resnet34')) is not None else '—' for r in runs)} |"
                         f" {', '.join(f'{_train_seconds(r):.0f}' for r in runs)} |"
                         f" {'yes' if _within_budget(runs) else 'no'} |")  # fmt: skip
        lines += ["", f"Chosen: {chosen(choice) or 'none (no candidate fits the budget)'}.", ""]
    return lines


def _real_lines(real: dict) -> list[str]:
    runs = real.get("runs", [])
    if not runs:
        return [f"Not recorded yet (`{config.Paths().real_data.name}`; see `presets/twolayer.yaml`).", ""]
    m0, t0 = runs[0]["metrics"]["twolayer"], runs[0]["metrics"]["twolayer_train_twolayer"]
    lines = [
        f"The preset `{config.REAL_PRESET}` on `{runs[0]['params'].get('mini-imagenet.data.source', '?')}`"
        f" ({t0['train_images']} train images), {t0['epochs']} epochs at {t0['image_size']}×{t0['image_size']} for"
        " each model, same schedule and augmentation; the test split is scored once per run, by twolayer-evaluate."
        f" Each row is one `dvc exp run` (`git show <commit>:dvc.lock` names its code and data); recorded by"
        f" `{real['command']}`.",
        "",
        "| experiment | seed | two-layer test (best val, epoch) | ResNet34 test (best val, epoch) | ratio |"
        f" {100 * config.CI_LEVEL:g} % interval, test set | training s two-layer / ResNet34 (threads) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        m = r["metrics"]["twolayer"]
        tt, tr = (r["metrics"][f"twolayer_train_{x}"] for x in config.MODELS)
        timed = [r["timings"].get(f"twolayer-train-{x}") or {} for x in config.MODELS]
        secs = " / ".join(f"{t['train_seconds']:.0f}" if "train_seconds" in t else "–" for t in timed)
        lines.append(f"| {r['experiment']} | {r['varied'].get('twolayer.seed', '–')} |"
                     f" {_pct(m['twolayer']['test_accuracy'])} ({_pct(tt['best_val_accuracy'])}, {tt['best_epoch']}) |"
                     f" {_pct(m['resnet34']['test_accuracy'])} ({_pct(tr['best_val_accuracy'])}, {tr['best_epoch']}) |"
                     f" {m['ratio']:.3f} | [{m['ratio_ci']['low']:.3f}, {m['ratio_ci']['high']:.3f}] |"
                     f" {secs} ({timed[0].get('threads', '?')}) |")  # fmt: skip
    rat = [r["metrics"]["twolayer"]["ratio"] for r in runs]
    z = statistics.NormalDist().inv_cdf(0.5 + config.CI_LEVEL / 2)
    half_test = statistics.mean((r["metrics"]["twolayer"]["ratio_ci"]["high"] - r["metrics"]["twolayer"]["ratio_ci"]["low"]) / 2 for r in runs)  # fmt: skip
    seed_std = statistics.stdev(rat) if len(rat) > 1 else 0.0
    mean = statistics.mean(rat)
    low, high = _interval(mean, half_test, seed_std, z)

    lines += [
        "",
        f"**Ratio two-layer / ResNet34 over {len(rat)} seed(s): {mean:.3f} ± {seed_std:.3f}** (mean ± std), with"
        f" {t0['parameters'] / runs[0]['metrics']['twolayer_train_resnet34']['parameters']:.3g}× ResNet34's parameters"
        f" and {m0['flops_ratio']:.3g}× its FLOPs; main layers {m0['twolayer']['main_layers']} against"
        f" {m0['resnet34']['main_layers']}.",
        "",
        f"Uncertainty: the test set alone gives each run's ratio a {100 * config.CI_LEVEL:g} % interval (paired bootstrap over"
        f" the test images) of mean half-width {half_test:.3f}; adding the seeds'"
        f" spread as an independent part, mean ± √(half-width² + ({z:.2f}·seed std)²) = [{low:.3f},"
        f" {high:.3f}]: it {_verdict(low, config.RATIO_BAR)} (the sheet's bar and this project's target).",
        "",
    ]
    return lines


def run(p: config.TwolayerParams, common: config.CommonParams, paths: config.Paths) -> str:
    r = read_json(detail_path(paths.root, config.TASK))
    abl = read_json(paths.ablations) if paths.ablations.is_file() else {}
    real = read_json(paths.real_data) if paths.real_data.is_file() else {}
    rounds = [read_json(c) for c in paths.real_choices if c.is_file()]
    m, t, a = p.twolayer, p.train, p.augment
    two, ref = r["twolayer"], r["resnet34"]
    layer_rows = [f"| {x['layer']} | {x['role']} | {x['kind']} | {x['weight_ops']} |" for x in two["layers"]]
    kind_text = {
        "hybrid": "a Conformer-style layer: a depthwise convolution (large kernel), multi-head self-attention over"
        " all patch tokens and an MLP, pre-norm, each with its skip",
        "attention": "a pre-LN Transformer encoder layer (self-attention over all patches + MLP), learned positions",
        "rrdb": "ESRGAN's residual-in-residual dense block",
        "conv": "a ConvNeXt block (depthwise convolution + MLP)",
    }[m.kind]
    lines = [
        "# twolayer: a network of at most two main layers against ResNet34 (seed 004 §III)",
        "",
        "Generated by `twolayer-package` from `reports/twolayer_detail.json`, `reports/twolayer_ablations.json`,"
        f" `measured/{paths.real_data.name}` and `measured/{paths.real_choices[0].stem}*.json`; do not edit. CPU milliseconds per image and training times are in"
        " `timings/twolayer-evaluate.json`, `timings/twolayer-train-*.json` (not here: they depend on the machine and its load).",
        "",
        "## Design principles",
        "",
        "- **Few layers, large receptive field.** Depth is what gives ResNet34 its receptive field; with two layers the"
        " field must come from the layer itself. Self-attention over all patches makes every position see the whole"
        " image in one layer (measured: the receptive field of the last feature map covers"
        f" {_pct(two['receptive_field'])} of the input for the two-layer network, {_pct(ref['receptive_field'])}"
        " for ResNet34, which gets it from 34 layers of depth and a stride of 32).",
        "- **Convolutional inductive bias where data is scarce.** Pure attention needs a lot of data; an overlapping"
        " convolutional patch embedding (Xiao et al.) and a large depthwise convolution inside each layer (Conformer,"
        " ConvNeXt) give locality and translation equivariance cheaply.",
        "- **Width instead of depth.** There is no limit on parameters or FLOPs, so each layer is wide; the layers"
        " keep the token map's resolution (no pooling between them).",
        f"- **The default model**: input layer = {m.stem_kernel}×{m.stem_kernel} convolution, stride {m.patch}"
        f" (patches with overlap) + BatchNorm + GELU; {m.main_layers} main layer(s) of kind `{m.kind}` ({kind_text}),"
        f" width {m.dim}, {m.heads} heads, MLP ratio {m.mlp_ratio}, depthwise kernel {m.dw_kernel}; output layer ="
        f" global average pool + LayerNorm + dropout {m.dropout} + one linear map. The alternatives (`attention`,"
        " `rrdb`, `conv`, one main layer) are ablations below.",
        f"- **The reference**: torchvision `resnet34(weights=None)`, the head sized to {r['classes']} classes, stem"
        f" `{p.resnet34.stem}` ({'unchanged: 7×7/2 convolution + max-pool' if p.resnet34.stem == 'imagenet' else '3×3/1 convolution, no max-pool'})."
        " Small inputs need no stem change to run (the last map is 1×1 at 32 px), but the stride-32 network sees few"
        " positions; the `cifar` stem (no stride before the blocks) costs 16× the FLOPs and was not run here.",
        f"- **Same training for both**: AdamW lr {t.lr:g}, weight decay {t.weight_decay} (not on biases/norms),"
        f" batch {t.batch_size}, {t.epochs} epochs ({t.warmup_epochs} warmup, cosine), label smoothing"
        f" {a.label_smoothing}, random crop after reflection padding of {a.crop_pad:g}·side, flip {a.flip}, the same"
        " seed and the same batch order; the kept weights are each model's best epoch by validation accuracy.",
        "",
        "## References",
        "",
        *[f"- {x}" for x in REFERENCES],
        "",
        "## The layer-count rule",
        "",
        "Written in `stages/twolayer/model.py` (`count_layers`, `check_layer_rule`), checked before training and"
        " by `tests/twolayer` (the default model passes, a three-main-layer model fails):",
        "",
        "1. A *layer* is a top-level child module of the network that holds weights and runs once per forward pass,"
        " in sequence from image to logits (found with forward hooks). A child holding only normalisation joins the"
        " layer before it; parameter-free children (activation, pooling) are not layers.",
        "2. The first layer is the *input layer* and the last the *output layer*; each may hold exactly one weight"
        " operation (one convolution or linear map), plus normalisation and activation.",
        "3. Everything between is made of *main layers*; a main layer is one residual unit, `x + f(x)` with a single"
        " outer skip around all of it (a ResNet BasicBlock is one too). Any other weighted module there counts as a"
        " main layer of its own.",
        f"4. At most {config.MAX_MAIN_LAYERS} main layers and at most {config.MAX_LAYERS} layers in all.",
        "",
        "Why a residual unit counts as one main layer: the sheet proposes RRDB and self-attention as the means to"
        " build its two-layer network, so its *layer* is a block, in the sense that a Transformer layer (attention"
        " + MLP) or a Conformer layer (convolution + attention + MLP) is one layer. To let a stricter reader judge, the"
        " weight operations inside every layer are counted and shown:",
        "",
        "| layer | role | kind | weight operations inside |",
        "|---|---|---|---|",
        *layer_rows,
        "",
        f"Two-layer network: {two['main_layers']} main layers, {two['total_layers']} layers in all,"
        f" {two['weight_ops']} weight operations. ResNet34 under the same rule: {ref['main_layers']} main layers"
        f" (BasicBlocks), {ref['total_layers']} layers, {ref['weight_ops']} weight operations (34 on its longest path"
        " plus 3 projection shortcuts).",
        "",
        "## Results (this run of the pipeline)",
        "",
        f"Data source: see `mini-imagenet.data.source` in params.yaml; {r['classes']} classes, {r['test_images']} test"
        f" images at {two['image_size']}×{two['image_size']}, {two['epochs']} epochs. Chance: {_pct(r['chance'])}.",
        "",
        "| model | test accuracy | best val accuracy (epoch) | final train accuracy (augmented) | parameters |"
        " forward GFLOPs / image | receptive field |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, x in (("two-layer", two), ("ResNet34", ref)):
        lines.append(f"| {name} | {_pct(x['test_accuracy'])} | {_pct(x['best_val_accuracy'])} ({x['best_epoch']}) |"
                     f" {_pct(x['final_train_accuracy'])} | {x['parameters']:,} | {x['flops'] / 1e9:.4f} |"
                     f" {_pct(x['receptive_field'])} |")  # fmt: skip
    ratio = r["ratio"]
    lines += [
        "",
        f"**Ratio two-layer / ResNet34 test accuracy: {'–' if ratio is None else f'{ratio:.3f}'}** (the sheet's bar:"
        f" ≥ {r['bar']}, {'met' if r['meets_bar'] else 'not met'}).",
        "",
        *ci_lines(r, spreads(config.TASK, paths.root).get("ratio"), "measured/spreads.json"),
        "![accuracy](../plots/twolayer/accuracy.png) ![loss](../plots/twolayer/loss.png)",
        "",
        "## Cost analysis",
        "",
        f"- Parameters: two-layer {two['parameters']:,}, ResNet34 {ref['parameters']:,} (ratio"
        f" {r['parameters_ratio']:.3f}).",
        f"- Forward FLOPs per image (`torch.utils.flop_counter`, 2 per multiply-add): two-layer"
        f" {two['flops'] / 1e9:.4f} G, ResNet34 {ref['flops'] / 1e9:.4f} G (ratio {r['flops_ratio']:.3f}). Attention"
        " is quadratic in the number of patches: doubling the image side multiplies its share by 16, the"
        " convolutions' by 4.",
        "- CPU milliseconds per image (batch 1, one thread): `timings/twolayer-evaluate.json`.",
        "",
        "## Ablations",
        "",
        *_ablation_lines(abl),
        "## Real data: `../shared/data/mini_imagenet`",
        "",
        *_choice_lines(rounds),
        *_real_lines(real),
        "## Findings",
        "",
        *findings(r, abl),
        "",
    ]
    text = "\n".join(lines).rstrip("\n") + "\n" + spread_section(config.TASK, paths.root)
    write_text(paths.report, text)
    print(f"twolayer-package: report -> {paths.report}")
    return text


def findings(r: dict, abl: dict) -> list[str]:
    """Statements that follow from the recorded numbers."""
    out = []
    ratio = r["ratio"]
    if ratio is not None:
        out.append(f"- In this run the two-layer network reaches {ratio:.2f}× ResNet34's test accuracy "
                   f"({'above' if ratio >= r['bar'] else 'below'} the sheet's bar of {r['bar']}) with"
                   f" {r['parameters_ratio']:.3g}× its parameters and {r['flops_ratio']:.3g}× its FLOPs.")  # fmt: skip
    runs = abl.get("runs", [])
    kinds = [x for x in runs if x.get("group") == "kind"]
    if kinds:
        best = max(kinds, key=lambda x: x["twolayer_val"])
        out.append(f"- Main-layer kind at sample scale, by validation accuracy: best `{best['name']}`"
                   f" ({_pct(best['twolayer_val'])}); all: "
                   + ", ".join(f"{x['name']} {_pct(x['twolayer_val'])}" for x in kinds) + ".")  # fmt: skip
    for x in runs:
        if x.get("note"):
            out.append(f"- {x['name']}: {x['note']}")
    out.append(f"- Peers on the course's full data: ResNet34 from scratch {_pct(config.PEERS['resnet34_from_scratch'][0])}"
               f"–{_pct(config.PEERS['resnet34_from_scratch'][1])}; the best two-layer peer"
               f" {_pct(config.PEERS['best_two_layer'])} vs its ResNet34's {_pct(config.PEERS['its_resnet34'])}"
               f" ({config.PEERS['best_two_layer'] / config.PEERS['its_resnet34']:.3f}). Our numbers are on far smaller data and budgets and are not comparable in level.")  # fmt: skip
    return out


if __name__ == "__main__":
    main(lambda: run(*config.load(), config.Paths()))
