"""What ``clipood pretrain`` prints when it is done: what went in, how it went, how to use the result."""

from __future__ import annotations

from pathlib import Path

from ..reporting.text import fmt_pct, markdown_table

__all__ = ["summary"]


def summary(results: dict, run_dir: Path) -> str:
    d, v = results["data"], results.get("validation") or {}
    excluded = ", ".join(f"{k} ({n} pairs)" for k, n in d["excluded_domains"].items()) or "none"
    rows = [
        ["architecture", results["arch"]],
        ["trained on", f"{d['train_pairs']} pairs of {d['csv']}"],
        ["excluded domains", excluded],
        ["steps x batch", f"{results['steps']} x {results['batch_size']} ({results['epochs']} epochs)"],
        ["time", f"{results['train_time_s']:.0f} s ({results['steps_per_s']} steps/s)"],
        ["final train loss", f"{results['final_train_loss']:.3f}"],
        ["logit scale", f"{results['final_logit_scale']:.1f}"],
    ]
    if v:
        rows += [["held-out pairs", str(v["n"])], ["held-out loss", f"{v['loss']:.3f}"],
                 ["image->text top-1", fmt_pct(v["i2t_top1"])], ["text->image top-1", fmt_pct(v["t2i_top1"])]]
    model = Path(run_dir) / "model"
    use = f"use it: --arch local-dir:{model}"
    if results.get("installed"):
        tag = Path(results["installed"]).name
        use += f"  (or --arch {results['arch']} --pretrained {tag})"
    return "\n".join([markdown_table(["pretraining", ""], rows), f"run directory: {run_dir}", use])
