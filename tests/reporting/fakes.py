"""Run folders written by hand for the report tests: results a real run would leave, with known truths."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import yaml
from PIL import Image

PACS = ["art_painting", "cartoon", "photo", "sketch"]
OFFICE = ["Art", "Clipart", "Product", "Real_World"]


def _entry(domain, split, role, acc, b2n=None):
    e = {"domain": domain, "split": split, "role": role, "n": 20, "accuracy": acc}
    if b2n is not None:
        base, new = b2n
        e.update(base=base, new=new, H=2 * base * new / (base + new))
    return e


def _write_run(root: Path, name: str, *, method, dataset, holdout, seed, variant, evals, domains, train_domains,
               b2n=False, kind="train", zeroshot=None, metrics=None, config=None, protocol="official") -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "sweep.json").write_text(json.dumps({"sweep": "t", "method": method, "dataset": dataset,
                                              "holdout": list(holdout), "seed": seed, "variant": variant,
                                              "base_to_new": b2n}))
    res = {"kind": kind, "domains": domains, "train_domains": train_domains, "holdout_domains": list(holdout),
           "base_to_new": b2n, "seed": seed, "zeroshot": zeroshot, "protocol": protocol}
    res["zeroshot" if kind == "zeroshot" else "final"] = evals
    (d / "results.json").write_text(json.dumps(res))
    if config is not None:
        (d / "config.yaml").write_text(yaml.safe_dump(config))
    if metrics:
        (d / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    return d


def _config(method, lam, seed, *, steps=4, lr=1e-5, batch=6, arch="clipood-tiny", pretrained="none"):
    return {"model": {"arch": arch, "pretrained": pretrained},
            "loss": {"name": "mms" if method == "clipood" else "linear", "margin_lambda": lam or 0.3},
            "averaging": {"name": "bma" if method == "clipood" else "none", "beta": 0.5 if lam != 0.3 else 1.0},
            "optim": {"lr": lr}, "train": {"steps": steps, "seed": seed, "batch_size": batch}}


def _domainbed_runs(root: Path, rng: random.Random, held_out=("art_painting", "sketch"), pairs=False,
                    seeds=(0, 1, 2), protocol="official") -> dict:
    """PACS, the held-out domains x seeds: CLIPood with lambda 0.1 / 0.3 (to select), ERM one variant.

    pairs: also the runs leave-one-domain-out selection needs, each held-out domain t with each training
    domain v held out at once (truth[(method, t, seed, lam, v)]: accuracy on v's 'in' split)."""
    truth = {}
    for held in held_out:
        train = [d for d in PACS if d != held]
        for seed in seeds:
            for method, variants in (("clipood", [0.1, 0.3]), ("erm-linear", [None])):
                for lam in variants:
                    test, oracle = rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.9)
                    vals = [rng.uniform(0.3, 0.9) for _ in train]
                    evals = {f"{held}/in": _entry(held, "in", "test", test),
                             f"{held}/out": _entry(held, "out", "oracle", oracle),
                             **{f"{d}/out": _entry(d, "out", "val", v) for d, v in zip(train, vals)}}
                    variant = {"loss.margin_lambda": lam} if lam is not None else {}
                    losses = [{"step": s, "loss": 2.0 / s + rng.random() * 0.1, "lr": 1e-5} for s in (1, 2, 3, 4)]
                    evs = [{"step": 2, "eval": evals | {f"{held}/in": _entry(held, "in", "test", test * 0.9)}},
                           {"step": 4, "eval": evals, "final": True}]
                    zs = {f"{held}/in": _entry(held, "in", "test", 0.25)}
                    _write_run(root, f"pacs-{method}-{held}-{lam}-seed{seed}", method=method, dataset="PACS",
                               holdout=(held,), seed=seed, variant=variant, evals=evals, domains=PACS,
                               train_domains=train, zeroshot=zs, metrics=losses + evs,
                               config=_config(method, lam, seed), protocol=protocol)
                    truth[(method, held, seed, lam)] = {"test": test, "oracle": oracle, "val": statistics.fmean(vals)}
                    if not pairs:
                        continue
                    for v in train:  # one run per pair of domains, serving either as the test domain
                        pair = tuple(sorted((held, v), key=PACS.index))
                        if (method, seed, lam, pair) not in truth:
                            rest = [d for d in PACS if d not in pair]
                            accs = {d: rng.uniform(0.3, 0.9) for d in pair}
                            pevals = {**{f"{d}/in": _entry(d, "in", "test", a) for d, a in accs.items()},
                                      **{f"{d}/out": _entry(d, "out", "oracle", rng.uniform(0.3, 0.9)) for d in pair},
                                      **{f"{d}/out": _entry(d, "out", "val", rng.uniform(0.3, 0.9)) for d in rest}}
                            _write_run(root, f"pacs-{method}-{'+'.join(pair)}-{lam}-seed{seed}", method=method,
                                       dataset="PACS", holdout=pair, seed=seed, variant=variant, evals=pevals,
                                       domains=PACS, train_domains=rest, config=_config(method, lam, seed))
                            truth[(method, seed, lam, pair)] = accs
                        truth[(method, held, seed, lam, v)] = truth[(method, seed, lam, pair)][v]
    return truth


def _cell(values):
    vals = [100 * v for v in values]
    return f"{statistics.fmean(vals):.1f} ± {statistics.stdev(vals):.1f}"


def _md_rows(markdown: str, title_start: str) -> tuple[list[str], dict[str, list[str]]]:
    lines = markdown.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("### " + title_start))
    rows = []
    for ln in lines[i + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    header, body = rows[0], rows[2:]
    n = 2 if header[:2] == ["split", "method"] else 1
    return header, {" ".join(r[:n]): r[n:] for r in body}


def _assert_png_has_content(path: Path) -> None:
    assert path.stat().st_size > 0
    with Image.open(path) as img:
        assert img.format == "PNG" and img.width > 100 and img.height > 100
        lo, hi = img.convert("L").getextrema()
        assert hi - lo > 50, f"{path.name} is blank"


def _wise_runs(root: Path) -> None:
    for seed in (0, 1):
        d = _write_run(root, f"pacs-wise-{seed}", method="wise-ft", dataset="PACS", holdout=("sketch",), seed=seed,
                       variant={}, evals={}, domains=PACS, train_domains=PACS[:3], kind="wise-ft")
        res = json.loads((d / "results.json").read_text())
        res["alphas"] = [0.0, 0.5, 1.0]
        res["variants"] = {f"alpha={a:g}": {"sketch/in": _entry("sketch", "in", "test", 0.3 + 0.2 * a + 0.01 * seed),
                                            "photo/out": _entry("photo", "out", "val", 0.5 + 0.1 * a)}
                           for a in res["alphas"]}
        (d / "results.json").write_text(json.dumps(res))




def _b2n_domain_runs(root: Path, rng: random.Random, held_out=("Art", "Real_World"), seeds=(0, 1),
                     protocol="official") -> dict:
    """OfficeHome base-to-new with a held-out domain (Table 4), one variant, evaluated only before training
    and at the end (two points per run: no curve to draw). truth[(held, seed)] = (base, new, total)."""
    truth = {}
    for held in held_out:
        train = [d for d in OFFICE if d != held]
        for seed in seeds:
            b, n, tot = rng.uniform(0.5, 0.9), rng.uniform(0.3, 0.7), rng.uniform(0.4, 0.8)
            evals = {f"{held}/in": _entry(held, "in", "test", tot, (b, n)),
                     **{f"{d}/out": _entry(d, "out", "val", rng.uniform(0.4, 0.8), (0.6, 0.5)) for d in train}}
            zs = {f"{held}/in": _entry(held, "in", "test", 0.3, (0.35, 0.2))}
            losses = [{"step": s, "loss": 1.5 / s, "lr": 1e-5} for s in (1, 2, 3, 4)]
            _write_run(root, f"oh-clipood-{held}-b2n-seed{seed}", method="clipood", dataset="OfficeHome",
                       holdout=(held,), seed=seed, variant={}, b2n=True, evals=evals, domains=OFFICE,
                       train_domains=train, zeroshot=zs, metrics=losses + [{"step": 4, "eval": evals, "final": True}],
                       config=_config("clipood", 0.3, seed, lr=2e-5, batch=8), protocol=protocol)
            truth[(held, seed)] = (b, n, tot)
    return truth
