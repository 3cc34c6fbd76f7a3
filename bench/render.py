"""Time diagram generation and measure how readable the diagrams are.

Usage: python bench/render.py [--levels stage,block,op] [--formats svg,png,pdf] [--rankdir TB] [--table] [SPEC ...]
(default: every spec in specs/). Prints one line per spec and level: milliseconds for to_dot and each
format (Graphviz's dot), the page's size in points, and the smallest text's height in pixels when the
diagram is shown 1920 pixels wide (readable from 9), measured from the SVG. `--table` then prints
the pages and text heights as the Markdown table of docs/diagrams.md (short of 9 pixels in bold).
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import resdsl
from resdsl.backends import diagram, dot

ROOT = Path(__file__).resolve().parent.parent


def best_ms(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", help=".res files (default: every spec in specs/)")
    parser.add_argument("--levels", default=",".join(diagram.LEVELS), help="comma-separated levels")
    parser.add_argument("--formats", default=",".join(dot.IMAGE_FORMATS), help="comma-separated image formats")
    parser.add_argument("--rankdir", choices=dot.RANKDIRS, default="TB")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best is kept")
    parser.add_argument("--table", action="store_true", help="also print the readability table of docs/diagrams.md")
    args = parser.parse_args()
    specs = [Path(p) for p in args.specs] or sorted((ROOT / "specs").glob("*.res"))
    formats = args.formats.split(",")
    header = f"{'spec':<18} {'level':<6} {'to_dot':>7} " + " ".join(f"{f:>7}" for f in formats)
    print(header + "  page (pt)    text@1920")
    levels = args.levels.split(",")
    table: dict[str, list[str]] = {}
    for spec in specs:
        net = resdsl.compile(spec)
        for level in levels:
            dot_ms, text = best_ms(functools.partial(net.to_dot, level=level, rankdir=args.rankdir), args.repeat)
            cells = []
            for fmt in formats:
                ms, (_, readability) = best_ms(functools.partial(dot.render_measured, text, fmt), args.repeat)
                cells.append(ms)
            page = f"{readability.width:.0f}×{readability.height:.0f}"
            print(
                f"{spec.stem:<18} {level:<6} {dot_ms:7.0f} "
                + " ".join(f"{c:7.0f}" for c in cells)
                + f"  {page:<12} {readability.smallest_px:.1f} px",
                flush=True,
            )
            px = f"{readability.smallest_px:.1f} px"
            text = px if readability.readable else f"**{px}**"
            table.setdefault(spec.stem, []).extend([page.replace("×", " × "), text])
    if args.table:
        print("\n| spec | " + " | ".join(f"{level}: page | {level}: text" for level in levels) + " |")
        print("| --- |" + " --- | ---: |" * len(levels))
        for name, cells in table.items():
            print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
