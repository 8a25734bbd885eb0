"""The report card: `report.md` and its PNG figures in the work directory, from the stages' `stage.json`.

Like nanochat's report card, one page that says what the run did: data kept and rejected and why, tokenizer
compression, model size and FLOPs, loss curves, held-out perplexity and bits per byte, the cloze task, the
alignment metrics before and after each step, sample generations, wall time per stage, and the hardware.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm_from_scratch.pipeline.config import RunConfig

FIGURES = ("pretrain_loss.png", "alignment.png", "eval.png", "wall_time.png")
MODEL_ORDER = ("base", "sft", "dpo", "rlhf")


def _figure(width: float = 6.4, height: float = 3.2):
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend needed

    return Figure(figsize=(width, height), dpi=110)


def _log(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return json.loads(path.read_text())["log"]


def plot_pretrain(workdir: Path, dirs: dict) -> object:
    records = _log(workdir / dirs["pretrain"] / "log.jsonl")
    fig = _figure()
    ax = fig.add_subplot()
    tr = [(r["step"], r["loss"]) for r in records if "loss" in r]
    va = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    ax.plot(*zip(*tr, strict=True), label="train", lw=1)
    ax.plot(*zip(*va, strict=True), "o-", label="validation", ms=3)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title("Pretraining")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_alignment(workdir: Path, dirs: dict) -> object:
    fig = _figure(9.6, 3.0)
    axes = fig.subplots(1, 3)
    sft = _log(workdir / dirs["sft"] / "log.json")
    axes[0].plot([r["step"] for r in sft if "loss" in r], [r["loss"] for r in sft if "loss" in r], lw=1, label="train")
    val = [(r["step"], r["val_reply_loss"]) for r in sft if "val_reply_loss" in r]
    axes[0].plot(*zip(*val, strict=True), "o-", ms=3, label="held-out")
    axes[0].set_title("SFT: reply loss")
    axes[0].legend()
    dpo = _log(workdir / dirs["dpo"] / "log.json")
    axes[1].plot([r["step"] for r in dpo], [r["loss"] for r in dpo], label="loss")
    axes[1].plot([r["step"] for r in dpo], [r["accuracy"] for r in dpo], label="pair accuracy")
    axes[1].axhline(0.6931, color="grey", lw=0.8, ls=":")
    axes[1].set_title("DPO")
    axes[1].legend()
    if "rlhf" in dirs:
        grpo = _log(workdir / dirs["rlhf"] / "log.json")
        key = next((k for k in ("reward", "mean_reward", "reward_mean") if k in grpo[0]), None)
        if key:
            axes[2].plot([r["step"] for r in grpo], [r[key] for r in grpo])
        axes[2].set_title(f"GRPO: {key or 'reward'}")
    else:
        axes[2].set_axis_off()
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    return fig


def plot_eval(results: dict) -> object:
    names = [n for n in MODEL_ORDER if n in results]
    fig = _figure(8.0, 3.0)
    axes = fig.subplots(1, 2)
    x = range(len(names))
    w = 0.27
    skill = [results[n].get("skill", {}).get("accuracy", 0.0) for n in names]
    axes[0].bar([i - w for i in x], skill, w, label="skill accuracy")
    axes[0].bar(list(x), [results[n]["cloze"]["accuracy_norm"] for n in names], w, label="cloze")
    axes[0].bar([i + w for i in x], [results[n]["align"]["format_ok"] for n in names], w, label="format_ok")
    axes[0].axhline(results[names[0]]["cloze"]["chance"], color="grey", ls=":", lw=0.8, label="cloze chance")
    axes[0].set_xticks(list(x), names)
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    axes[0].set_title("Accuracy / rate")
    axes[1].bar(list(x), [results[n]["lm"]["bpb"] for n in names])
    axes[1].set_xticks(list(x), names)
    axes[1].set_title("Held-out bits per byte")
    fig.tight_layout()
    return fig


def plot_wall(stages: dict) -> object:
    names = list(stages)
    fig = _figure(6.4, 0.35 * len(names) + 1)
    ax = fig.add_subplot()
    ax.barh(names[::-1], [stages[n]["wall_s"] for n in names][::-1])
    ax.set_xlabel("wall time of the invocation that finished the stage (s)")
    fig.tight_layout()
    return fig


def _fmt(x, digits: int = 3) -> str:
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    if isinstance(x, int) and abs(x) >= 10_000:
        return f"{x:,}"
    return str(x)


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _skill_cell(skill: dict) -> str:
    if not skill:
        return "-"
    below = skill["accuracy"] <= skill.get("chance", 0.0)
    return f"{skill['accuracy']:.3f}" + (" (at or below chance)" if below else "")


def _column_notes(ev: dict, names: list[str], config: RunConfig, cloze_chance: float) -> list[str]:
    """One line per column: what it measures, on what, and where chance is."""
    skill = ev[names[0]].get("skill") or {}
    n_skill, skill_chance = skill.get("problems", 0), skill.get("chance", 0.0)
    cloze_below = [n for n in names if ev[n]["cloze"]["accuracy_norm"] <= cloze_chance]
    return [
        "What each column measures:",
        "",
        f"- **skill accuracy** (the capability): the share of {n_skill} held-out arithmetic questions "
        '("What is 47 + 85?", problems no training step could draw) whose greedy answer\'s first integer is exactly '
        f"right. Chance (always the most common answer): {skill_chance:.3f}; a model at or below it knows nothing "
        "of the skill, and the cell says so.",
        "- **val loss / ppl / bits/byte**: next-token cross-entropy on the corpus's held-out validation windows "
        "(bits per byte is comparable across tokenizers).",
        f"- **cloze acc** (per token) **/ acc/byte** (per byte of the choice): {ev[names[0]]['cloze']['n']} "
        f"next-line questions from held-out documents, {config.eval.cloze_choices} choices (chance "
        f"{cloze_chance:.2f})" + (f"; at or below chance: {', '.join(cloze_below)}." if cloze_below else "."),
        "- **format_ok**: the form of replies to held-out dialogue prompts, not their content: the reply ends its "
        "turn, has at most 20 words and is not flagged by the profanity classifier (word salad that stops early "
        "passes). **ended** and **flagged** are two of its parts.",
        "- **KL to SFT**: sampled estimate of KL(model || SFT model) in nats per reply on the dialogue prompts: how "
        "far a stage moved from its start (0 for SFT itself).",
    ]


def render_report(config: RunConfig, summary: dict) -> str:
    s = {k: v["metrics"] for k, v in summary["stages"].items()}
    wall = {k: v["wall_s"] for k, v in summary["stages"].items()}
    cur, tok, sh, pre = s["curate"], s["tokenizer"], s["shards"], s["pretrain"]
    out = [f"# Report card: `{config.run.preset}` run", ""]
    hw = summary["hardware"]
    out += [
        f"Hardware: {hw['cpu']} ({hw['cpu_count']} logical CPUs, {hw['torch_threads']} torch threads)"
        + (f", {hw['gpu_count']} x {hw['gpu']}" if "gpu" in hw else "")
        + f"; device `{summary['device']}`; torch {hw['torch']}, Python {hw['python']}.",
        f"Total wall time of the stages: **{sum(wall.values()) / 60:.1f} min**. Config: `config.yaml`.",
        "",
        "## Data",
        "",
        f"{cur['kept']} documents kept, {cur['rejected']} rejected; {cur['bytes_in'] / 1e6:.2f} MB in, "
        f"{cur['bytes_out'] / 1e6:.2f} MB of JSONL out. Kept per source: "
        + ", ".join(f"{k} {v}" for k, v in cur["kept_by_source"].items())
        + ".",
        "",
    ]
    rows = []
    for name, st in cur["stages"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(st["reasons"].items(), key=lambda kv: -kv[1])[:3])
        counters = ", ".join(f"{k} {v}" for k, v in st.get("counters", {}).items())
        rows.append(
            [name, st["docs_in"], st["docs_out"], st["docs_in"] - st["docs_out"], reasons or "-", counters or "-"]
        )
    out += [_table(["stage", "docs in", "docs out", "rejected", "top reasons", "counters"], rows), ""]
    out += [
        "## Tokens",
        "",
        f"BPE tokenizer, {tok['vocab_size']} tokens: **{tok['heldout_bytes_per_token']:.2f} bytes/token** on "
        f"{tok['heldout_docs']} held-out documents. Shards: {sh['train_tokens']:,} train and {sh['val_tokens']:,} "
        f"validation tokens in {sh['files']} files ({sh['documents']['train']} / {sh['documents']['val']} documents).",
        "",
        "## Pretraining",
        "",
        f"{pre['parameters']:,} parameters, {pre['flops_per_token'] / 1e6:.1f} MFLOP per token (training), "
        f"{pre['steps']} steps on {pre['tokens']:,} tokens = {pre['train_flops']:.2e} FLOP; "
        f"{pre['tok_per_s']:,.0f} tokens/s, MFU {pre['mfu']:.1%} of this machine's measured matmul peak.",
        f"Validation: loss {pre['val_loss']:.3f} nats/token, perplexity {pre['val_ppl']:.1f}, "
        f"**{pre['val_bpb']:.3f} bits/byte**.",
        "",
        "![pretraining loss](pretrain_loss.png)",
        "",
        "## Alignment",
        "",
        f"SFT on {s['sft']['examples']} examples ({s['sft'].get('skill_examples', 0)} of them arithmetic problems of "
        f"the verifiable skill, the rest dialogue): held-out reply loss {s['sft']['val_reply_loss_before']:.3f}"
        f" -> {s['sft']['val_reply_loss_after']:.3f}. Preference pairs: {s['preferences']['pairs']} from "
        f"{s['preferences']['prompts']} prompts. DPO ({s['dpo']['steps']} steps): final loss {s['dpo']['loss']:.3f}, "
        f"pair accuracy {s['dpo']['accuracy']:.2f}.",
    ]
    if "rlhf" in s:
        rl = s["rlhf"]
        rm = rl.get("reward_model") or s.get("reward")
        kind = rl.get("reward_kind", "model")
        what = "the verifier's exact check" if kind == "verifier" else "the learned reward model"
        out += [f"RL: GRPO {rl['steps']} steps with {what} as the reward on training-side skill problems."]
        if rm:
            out += [
                f"Reward model (Bradley-Terry on the preference pairs): pair accuracy {rm['train_accuracy']:.2f} "
                f"(train) / {rm['held_out_accuracy']:.2f} (held out)."
            ]
    out += ["", "![alignment curves](alignment.png)", "", "## Evaluation", ""]
    ev = s["eval"]
    names = [n for n in MODEL_ORDER if n in ev]
    rows = [
        [
            n,
            _skill_cell(ev[n].get("skill", {})),
            ev[n]["lm"]["loss"],
            f"{ev[n]['lm']['ppl']:.1f}",
            ev[n]["lm"]["bpb"],
            ev[n]["cloze"]["accuracy"],
            ev[n]["cloze"]["accuracy_norm"],
            ev[n]["align"]["format_ok"],
            ev[n]["align"]["ended"],
            ev[n]["align"]["flagged"],
            ev[n]["align"]["kl_to_sft"],
        ]
        for n in names
    ]
    chance = ev[names[0]]["cloze"]["chance"]
    out += [
        _table(
            [
                "model",
                "skill accuracy",
                "val loss",
                "ppl",
                "bits/byte",
                "cloze acc",
                "cloze acc/byte",
                "format_ok",
                "ended",
                "flagged",
                "KL to SFT",
            ],
            rows,
        ),
        "",
        *_column_notes(ev, names, config, chance),
        "",
        "![evaluation](eval.png)",
        "",
        "### Samples",
        "",
    ]
    for n in names:
        for smp in ev[n]["samples"]:
            out.append(f"- **{n}** `{smp['prompt'].strip()}` -> {smp['output'].strip()!r}")
    out += ["", "## Wall time", ""]
    out += [_table(["stage", "seconds"], [[k, v] for k, v in wall.items()]), "", "![wall time](wall_time.png)", ""]
    return "\n".join(out)


def write_report(workdir: Path, config: RunConfig, summary: dict) -> Path:
    """Write `report.md` and the figures of a finished run into `workdir`."""
    from llm_from_scratch.utils import atomic_path

    workdir = Path(workdir)
    dirs = summary["dirs"]
    figures = {
        "pretrain_loss.png": plot_pretrain(workdir, dirs),
        "alignment.png": plot_alignment(workdir, dirs),
        "eval.png": plot_eval(summary["stages"]["eval"]["metrics"]),
        "wall_time.png": plot_wall(summary["stages"]),
    }
    for name, fig in figures.items():
        with atomic_path(workdir / name) as tmp:
            fig.savefig(tmp, format="png")
    with atomic_path(workdir / "report.md") as tmp:
        tmp.write_text(render_report(config, summary))
    return workdir / "report.md"
