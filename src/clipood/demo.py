"""The first-run job: zero-shot vs plain fine-tuning vs CLIPood on the bundled default.

Until a pretrained backbone and a real benchmark ship offline (issue: bundled default),
the demo uses the shapes dataset drawn locally (8 shapes x 4 drawing styles) and the
tiny open_clip config with random weights trained from scratch, with a learning rate
suited to that. It shows the whole pipeline and the output format, not CLIPood's value.
Finished runs are skipped, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path

from .cli import DEFAULT_CACHE
from .config import Config, validate
from .data.synthetic import make_shapes_dataset
from .report import mean_std
from .runs import RunDir
from .tables import markdown_table
from .training.runner import run_train

HELDOUT = "sketch"
METHODS = {  # name: (loss, averaging)
    "fine-tune (softmax)": ("metric_softmax", "none"),
    "CLIPood (MMS + BMA)": ("mms", "bma"),
}


def demo_config(root: Path, out: Path, name: str, loss: str, averaging: str, steps: int, seed: int) -> Config:
    cfg = Config()
    cfg.model.arch, cfg.model.pretrained = "clipood-tiny", None
    cfg.data.root, cfg.data.holdout_domains, cfg.data.base_to_new = str(root), [HELDOUT], True
    cfg.data.workers = 0
    cfg.loss.name, cfg.averaging.name = loss, averaging
    cfg.optim.lr, cfg.optim.weight_decay = 1e-3, 0.0  # from scratch, not the paper's fine-tuning lr
    cfg.train.steps, cfg.train.batch_size, cfg.train.seed = steps, 8, seed
    cfg.train.checkpoint_every = max(steps // 2, 1)
    cfg.run.output_dir, cfg.run.name = str(out), name
    return validate(cfg)


def run_demo(out: Path, *, steps: int = 60, seeds: int = 1, progress: bool = True) -> str:
    root = make_shapes_dataset(DEFAULT_CACHE / "datasets" / "shapes")
    rows = {"zero-shot": [], **{m: [] for m in METHODS}}
    for seed in range(seeds):
        for method, (loss, averaging) in METHODS.items():
            name = f"{loss}-{averaging}-seed{seed}"
            run = RunDir(out / name)
            results = run.results()
            if results is None:
                cfg = demo_config(root, out, name, loss, averaging, steps, seed)
                resume = run if (run.path / "config.yaml").exists() else None
                _, results = run_train(cfg, resume=resume, progress=progress)
            test = results["final"][f"{HELDOUT}/in"]
            rows[method].append(test)
            if method == next(iter(METHODS)):
                rows["zero-shot"].append(results["zeroshot"][f"{HELDOUT}/in"])
    table = markdown_table(
        [f"method ({HELDOUT} held out)", "base classes", "new classes", "H", "all classes"],
        [[m] + [mean_std([e[k] for e in entries]) for k in ("base", "new", "H", "accuracy")]
         for m, entries in rows.items()])
    print(table)
    print(f"\nruns in {out}; accuracy (%) on the held-out domain '{HELDOUT}' ('in' split), "
          f"{seeds} seed(s), {steps} steps each")
    return table
