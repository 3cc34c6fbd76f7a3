"""Time diagram generation: DOT text (resdsl alone) and each image format (Graphviz's dot).

Usage: python bench/render.py [SPEC ...]   (default: every spec in specs/)
Prints one line per spec and level: milliseconds for to_dot, svg, png, pdf, and the PNG's size.
"""

from __future__ import annotations

import functools
import struct
import sys
import time
from pathlib import Path

import resdsl
from resdsl.backends import dot

ROOT = Path(__file__).resolve().parent.parent


def best_ms(fn, repeat: int = 3) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return 1000 * min(times), result


def main(paths: list[str]) -> None:
    specs = [Path(p) for p in paths] or sorted((ROOT / "specs").glob("*.res"))
    print(f"{'spec':<18} {'level':<6} {'to_dot':>7} {'svg':>7} {'png':>7} {'pdf':>7}  png size")
    for spec in specs:
        net = resdsl.compile(spec)
        for level in dot.LEVELS:
            dot_ms, text = best_ms(functools.partial(net.to_dot, level=level))
            cells = []
            for fmt in dot.IMAGE_FORMATS:
                ms, data = best_ms(functools.partial(dot.render, text, fmt))
                cells.append(ms)
                if fmt == "png":
                    width, height = struct.unpack(">II", data[16:24])
            print(
                f"{spec.stem:<18} {level:<6} {dot_ms:7.0f} "
                + " ".join(f"{c:7.0f}" for c in cells)
                + f"  {width}×{height}"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
