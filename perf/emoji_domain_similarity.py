"""How alike the emoji benchmark's domains are: the evidence for its default held-out domain.

For every class, the plain image of its first emoji in each domain is cropped to its
drawing (pixels differing from white), scaled to 32x32 grey and compared across domains
by Pearson correlation; the table is the mean over classes. The held-out domain should
be unlike every training domain: the lowest mean and the lowest nearest-domain value.
Also printed: mean colour saturation and fraction of near-black pixels per domain.

    python perf/emoji_domain_similarity.py ~/.cache/clipood/datasets/emoji
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image


def features(path: Path) -> tuple[np.ndarray, float, float]:
    img = Image.open(path).convert("RGB")
    a = np.asarray(img, dtype=np.int16)
    ys, xs = np.nonzero(np.abs(a - 255).sum(axis=2) > 30)
    crop = img.crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)).resize((32, 32), Image.BILINEAR)
    grey = np.asarray(crop.convert("L"), dtype=np.float64)
    saturation = float(np.asarray(img.convert("HSV"))[..., 1].mean() / 255)
    dark = float((np.asarray(img.convert("L")) < 50).mean())
    return grey, saturation, dark


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path, help="a built emoji benchmark (clipood data build emoji)")
    root = ap.parse_args().root
    manifest = json.loads((root / "manifest.json").read_text())
    domains = manifest["domains"]
    feats = {d: [] for d in domains}
    for c in manifest["classes"]:
        stem = c["emoji"][0]["hexcode"].lower()
        for d in domains:
            files = sorted((root / d / c["folder"]).glob("*-0.png"))
            first = next((f for f in files if f.name == f"{stem}-0.png"), files[0])
            feats[d].append(features(first))
    n = len(domains)
    sim = np.array([[np.mean([correlation(x[0], y[0]) for x, y in zip(feats[a], feats[b])]) for b in domains]
                    for a in domains])
    print(f"{len(manifest['classes'])} classes; same-class grey-structure correlation (1 = identical drawings)\n")
    print("| domain | " + " | ".join(domains) + " | mean to others | nearest other | saturation | dark pixels |")
    print("|---" * (n + 5) + "|")
    for i, d in enumerate(domains):
        others = [sim[i, j] for j in range(n) if j != i]
        sat = np.mean([f[1] for f in feats[d]])
        dark = np.mean([f[2] for f in feats[d]])
        print(f"| {d} | " + " | ".join(f"{x:.3f}" for x in sim[i]) +
              f" | {np.mean(others):.3f} | {max(others):.3f} | {sat:.3f} | {dark:.3f} |")


if __name__ == "__main__":
    main()
