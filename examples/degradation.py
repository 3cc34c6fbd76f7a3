"""The degradation experiment of He et al. 2015 (Figure 1), at laptop scale.

Trains plain and residual CIFAR-style networks of 20 and 56 layers with the
same budget and plots training loss against steps:

    .venv/bin/python examples/degradation.py                  # a few minutes on a CPU
    .venv/bin/python examples/degradation.py --steps 5 --out smoke-run

The residual networks are the bundled `cifar_resnet20` / `cifar_resnet56`
specs; the plain ones are the same specs with `shortcut=none`, which removes
every shortcut and leaves the layers as they are. The data is scikit-learn's
bundled 8×8 digits (no download), upsampled; `--data synthetic` needs no
scikit-learn.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import resdsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train import make_data  # noqa: E402 - the sibling example script

NETWORKS = {
    "plain-20": ("cifar_resnet20", "none"),
    "plain-56": ("cifar_resnet56", "none"),
    "ResNet-20": ("cifar_resnet20", "A"),
    "ResNet-56": ("cifar_resnet56", "A"),
}


def train(spec: str, shortcut: str, args, images, labels) -> list[float]:
    torch.manual_seed(args.seed)
    size = f"3x{args.size}x{args.size}"
    model = resdsl.create_model(spec, num_classes=10, shortcut=shortcut, input=size)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(args.seed)
    losses = []
    model.train()
    for step in range(args.steps):
        # The paper warms ResNet-110 up at a tenth of the learning rate; here every network gets the same warm-up.
        for group in optimizer.param_groups:
            group["lr"] = args.lr / 10 if step < args.warmup else args.lr
        batch = torch.randint(len(images), (args.batch_size,), generator=generator)
        loss = F.cross_entropy(model(images[batch]), labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def smooth(values: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        out.append(total / min(index + 1, window))
    return out


def plot(results: dict[str, list[float]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=120)
    styles = {
        "plain-20": ("tab:orange", "--"),
        "plain-56": ("tab:red", "--"),
        "ResNet-20": ("tab:blue", "-"),
        "ResNet-56": ("tab:green", "-"),
    }
    window = max(1, len(next(iter(results.values()))) // 25)
    for name, losses in results.items():
        color, style = styles[name]
        axis.plot(smooth(losses, window), color=color, linestyle=style, label=name)
    axis.set_xlabel("training step")
    axis.set_ylabel(f"training loss (moving average of {window})")
    axis.set_yscale("log")
    axis.set_title(title, fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=100, help="first steps at a tenth of the learning rate")
    parser.add_argument("--size", type=int, default=16, help="input height and width")
    parser.add_argument("--data", choices=("digits", "synthetic"), default="digits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("docs"), help="folder for degradation.png and .json")
    args = parser.parse_args(argv)
    images, labels = make_data(args.data, (3, args.size, args.size), 10, count=2048, seed=args.seed)
    results, seconds = {}, {}
    for name, (spec, shortcut) in NETWORKS.items():
        start = time.perf_counter()
        results[name] = train(spec, shortcut, args, images, labels)
        seconds[name] = time.perf_counter() - start
        tail = results[name][-max(1, args.steps // 10) :]
        print(f"{name:<10} final loss {sum(tail) / len(tail):.4f}  ({seconds[name]:.0f} s)", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    title = (
        f"{args.data} at {args.size}×{args.size}, {args.steps} steps of {args.batch_size}, "
        f"SGD lr {args.lr}"
        + (f" after {args.warmup} at {args.lr / 10:g}" if args.warmup else "")
        + f", seed {args.seed}"
    )
    plot(results, args.out / "degradation.png", title)
    summary = {"settings": vars(args) | {"out": None}, "seconds": seconds, "losses": results}
    (args.out / "degradation.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
