"""Row 3: forward latency of the generated ResNet-50 against the hand-written one.

Same weights (tests/recipe.py, loaded with strict=True into both), eval mode,
no autograd, batches 1 and 8, the two models run round-robin. Then both under
torch.compile (batch 1 only: compiling is slow on a small CPU).
"""

from __future__ import annotations

import sys
import time

import torch
from common import ROOT, Stat
from reference_resnet import reference

sys.path.insert(0, str(ROOT / "tests"))
from recipe import fill_module, recipe_input  # noqa: E402

GOAL_RATIO = 1.02


def models() -> tuple[torch.nn.Module, torch.nn.Module, str]:
    import resdsl

    generated = resdsl.compile(ROOT / "specs" / "resnet50.res").to_torch().eval()
    fill_module(generated)
    hand, origin = reference("resnet50")
    hand.load_state_dict(generated.state_dict(), strict=True)
    return generated, hand.eval(), origin


def race(generated, hand, batch: int, rounds: int, iters: int) -> dict[str, Stat]:
    """Median per-forward time of each model; each round times `iters` forwards of one, then the other."""
    x = torch.from_numpy(recipe_input(batch))
    samples = {"generated": [], "hand-written": []}
    pair = [("generated", generated), ("hand-written", hand)]
    with torch.inference_mode():
        for model in (generated, hand):  # warm-up
            model(x)
        torch.testing.assert_close(generated(x), hand(x))
        for round_ in range(rounds):
            for name, model in pair if round_ % 2 == 0 else reversed(pair):
                start = time.perf_counter()
                for _ in range(iters):
                    model(x)
                samples[name].append((time.perf_counter() - start) / iters)
    return {name: Stat(values) for name, values in samples.items()}


def run(rounds: int = 5, compiled: bool = True) -> dict:
    generated, hand, origin = models()
    results = {"reference": origin, "threads": torch.get_num_threads(), "rows": []}
    for batch, iters in ((1, 3), (8, 1)):
        stats = race(generated, hand, batch, rounds, iters)
        results["rows"].append(_row(f"eager, batch {batch}", stats))
    if compiled:
        start = time.perf_counter()
        try:
            generated_c, hand_c = torch.compile(generated), torch.compile(hand)
            stats = race(generated_c, hand_c, 1, 5, 2)
            results["rows"].append(_row("torch.compile, batch 1", stats))
            results["compile_s"] = time.perf_counter() - start
        except Exception as exc:  # noqa: BLE001 - a missing compiler toolchain is reported, not fatal
            results["compile_error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    return results


def _row(label: str, stats: dict[str, Stat]) -> dict:
    gen, hand = stats["generated"], stats["hand-written"]
    return {"label": label, "generated": gen.as_dict(), "hand": hand.as_dict(), "ratio": gen.median / hand.median}


if __name__ == "__main__":
    import json

    print(json.dumps(run(compiled="--no-compile" not in sys.argv), indent=2))
