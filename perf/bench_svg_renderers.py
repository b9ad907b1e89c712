"""SVG renderers on the emoji benchmark's icons: time per icon, failures, and pixel agreement.

Renders the same icons (N per domain, a seeded sample) at --size with every renderer that
is installed (resvg-py is a clipood dependency; the others are optional:
``pip install cairosvg pyvips pyvips-binary skia-python svglib``) and compares each image,
composited on white, with a reference drawn by resvg at 4x the size and downsampled
(Lanczos). 'MAE' is the mean absolute difference in grey levels (0-255); 'n>8' counts
icons that differ visibly (missing parts, wrong gradients). docs/benchmark.md has a run.

    python perf/bench_svg_renderers.py --per-domain 150
"""

from __future__ import annotations

import argparse
import io
import random
import time

import numpy as np
from PIL import Image

from clipood.data.emoji.iconify import IconSet, svg_document
from clipood.data.emoji.sources import DOMAINS, find_sources


def _png(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(bytes(data)))


def r_resvg(svg: str, size: int) -> Image.Image:
    import resvg_py
    return _png(resvg_py.svg_to_bytes(svg_string=svg, width=size, height=size, skip_system_fonts=True))


def r_cairosvg(svg: str, size: int) -> Image.Image:
    import cairosvg
    return _png(cairosvg.svg2png(bytestring=svg.encode(), output_width=size, output_height=size))


def r_pyvips(svg: str, size: int) -> Image.Image:
    import pyvips
    return _png(pyvips.Image.svgload_buffer(svg.encode()).write_to_buffer(".png"))


def r_skia(svg: str, size: int) -> Image.Image:
    import skia
    dom = skia.SVGDOM.MakeFromStream(skia.MemoryStream(svg.encode(), True))
    surface = skia.Surface(size, size)
    with surface as canvas:
        dom.setContainerSize(skia.Size(size, size))
        dom.render(canvas)
    return Image.fromarray(surface.makeImageSnapshot().toarray(colorType=skia.kRGBA_8888_ColorType), "RGBA")


def r_svglib(svg: str, size: int) -> Image.Image:
    from reportlab.graphics import renderPM
    from svglib.svglib import svg2rlg
    return _png(renderPM.drawToString(svg2rlg(io.BytesIO(svg.encode())), fmt="PNG"))


RENDERERS = {"resvg-py": r_resvg, "cairosvg": r_cairosvg, "pyvips": r_pyvips, "skia-python": r_skia,
             "svglib": r_svglib}


def on_white(img: Image.Image, size: int) -> np.ndarray:
    img = img.convert("RGBA")
    if img.size != (size, size):
        img = img.resize((size, size), Image.LANCZOS)
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, img).convert("RGB"), dtype=np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-domain", type=int, default=150)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--sources", default=None)
    args = ap.parse_args()
    nm = find_sources(args.sources, [d.package for d in DOMAINS])
    stats = {k: {"t": 0.0, "n": 0, "fail": 0, "mae": []} for k in RENDERERS}
    missing = {}
    for d in DOMAINS:
        s = IconSet(nm / d.package)
        names = sorted(s.icons)
        random.Random(0).shuffle(names)
        for name in names[: args.per_domain]:
            icon = s.icon(name)
            svg = svg_document(icon, args.size, background="none")
            ref = on_white(r_resvg(svg_document(icon, 4 * args.size, background="none"), 4 * args.size), args.size)
            for k, fn in RENDERERS.items():
                if k in missing:
                    continue
                t = time.perf_counter()
                try:
                    img = fn(svg, args.size)
                except ImportError as e:
                    missing[k] = f"not installed ({e.name})"
                    continue
                except Exception as e:  # a renderer that cannot draw an icon counts as a failure
                    stats[k]["fail"] += 1
                    if stats[k]["fail"] == 1:
                        first_line = str(e).splitlines()[0] if str(e) else ""
                        missing.setdefault(k + " first error", f"{type(e).__name__}: {first_line[:120]}")
                    continue
                stats[k]["t"] += time.perf_counter() - t
                stats[k]["n"] += 1
                stats[k]["mae"].append(float(np.abs(on_white(img, args.size) - ref).mean()))
    print(f"{'renderer':12s} {'ms/icon':>8s} {'ok':>5s} {'fail':>5s} {'MAE':>6s} {'p95':>6s} {'max':>6s} {'n>8':>4s}")
    for k, v in stats.items():
        if k in missing or not v["n"]:
            continue
        m = np.array(v["mae"])
        print(f"{k:12s} {1000 * v['t'] / v['n']:8.2f} {v['n']:5d} {v['fail']:5d} {m.mean():6.2f} "
              f"{np.percentile(m, 95):6.2f} {m.max():6.1f} {int((m > 8).sum()):4d}")
    for k, why in missing.items():
        print(f"{k}: {why}")


if __name__ == "__main__":
    main()
