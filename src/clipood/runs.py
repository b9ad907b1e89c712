"""A run directory and what it holds.

    RUN/config.yaml        the full resolved configuration
    RUN/metrics.jsonl      one JSON object per log/eval event
    RUN/results.json       final accuracies (zero-shot and trained), written last
    RUN/model/             the averaged model: an open_clip local-dir folder
    RUN/checkpoints/       resumable training state
    RUN/bad_images.txt     images skipped under --bad-images skip
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from .config import Config, load_yaml, save_yaml
from .errors import ClipoodError
from .io import write_json, write_text


def default_name(cfg: Config) -> str:
    held = "+".join(cfg.data.holdout_domains) or "all"
    b2n = "-b2n" if cfg.data.base_to_new else ""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dataset = f"{cfg.data.dataset.lower()}-" if cfg.data.dataset else ""
    return f"{dataset}{cfg.loss.name}-{cfg.averaging.name}-{held}{b2n}-seed{cfg.train.seed}-{stamp}"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(cls, cfg: Config) -> "RunDir":
        path = Path(cfg.run.output_dir) / (cfg.run.name or default_name(cfg))
        if (path / "results.json").exists():
            raise ClipoodError(f"{path} already holds a finished run; choose another --name or delete it")
        if (path / "checkpoints").is_dir() and any((path / "checkpoints").iterdir()):
            raise ClipoodError(f"{path} holds an unfinished run; continue it with 'clipood train --resume {path}' "
                               f"or choose another --name")
        path.mkdir(parents=True, exist_ok=True)
        run = cls(path)
        save_yaml(cfg, path / "config.yaml")
        return run

    @classmethod
    def open(cls, path: str | Path) -> tuple["RunDir", Config]:
        path = Path(path)
        if not (path / "config.yaml").is_file():
            raise ClipoodError(f"--resume: {path} is not a run directory (no config.yaml)")
        return cls(path), load_yaml(path / "config.yaml")

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    def log(self, record: dict) -> None:
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def truncate_metrics(self, after_step: int) -> None:
        """On resume, drop events logged after the checkpoint (they will be logged again)."""
        if not self.metrics_path.exists():
            return
        keep = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line torn by the kill
            if rec.get("step", 0) <= after_step:
                keep.append(line)
        write_text(self.metrics_path, "".join(ln + "\n" for ln in keep))

    def write_results(self, results: dict) -> None:
        write_json(self.path / "results.json", results)

    def write_bad_images(self, bad: list[tuple[str, str]]) -> None:
        write_text(self.path / "bad_images.txt", "".join(f"{p}\t{r}\n" for p, r in bad))

    def results(self) -> Optional[dict]:
        p = self.path / "results.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.exists() else None
