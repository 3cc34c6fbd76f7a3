"""Train any resdsl spec with DistributedDataParallel: progress lines, held-out accuracy, resumable checkpoints.

One process:          python examples/train.py cifar_resnet20 --set input=3x32x32 --set classes=10
Several (CPU, gloo):  torchrun --standalone --nproc_per_node=2 examples/train.py cifar_resnet20 --set classes=10
GPUs (NCCL):          torchrun --standalone --nproc_per_node=4 examples/train.py resnet50 --device cuda --data photos/

SPEC is a bundled model name (`resdsl.list_models()`) or a .res path. The
data is scikit-learn's bundled 8×8 digits by default (1,797 images, no
download; a fifth held out), resized to the spec's input. `--data DIR` reads
an image folder: DIR/CLASS/*.png (or .jpg ...), or DIR/train/CLASS/... and
DIR/val/CLASS/... (without val/, a tenth of each class is held out); it needs
Pillow and loads every image into memory, which suits an example, not
ImageNet. `--data synthetic` is random images with learnable labels.

Rank 0 prints a line every `--log-every` steps (step, loss and accuracy over
those steps, images per second, learning rate), the held-out accuracy every
`--eval-every` steps and at the end, and a final line. With `--out DIR` it
saves DIR/checkpoint-STEP.pt every `--save-every` steps and at the end (model,
optimizer, scheduler and step: `--resume FILE` continues from one exactly)
and DIR/model.pt, the final state_dict, which the generated module loads with
`load_state_dict`. The data order depends only on the seed, the step and the
global batch, so a resumed run sees the batches an uninterrupted one would.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

import resdsl

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def build_parser() -> argparse.ArgumentParser:
    # No option here may be a prefix of two of torchrun's (`--log` would be read as `--log-dir` or
    # `--logs-specs` and fail as ambiguous): tests/test_examples.py checks them against its parser.
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="bundled model name or .res path")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--data", default="digits", help="digits (default), synthetic, or an image folder")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--lr", type=float, default=0.1, help="peak learning rate (SGD, momentum 0.9)")
    parser.add_argument("--warmup", type=int, help="linear warm-up steps before the cosine decay (default: 5%%)")
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=20, metavar="N", help="a progress line every N steps")
    parser.add_argument("--eval-every", type=int, default=0, metavar="N", help="held-out accuracy every N steps")
    parser.add_argument("--out", type=Path, help="folder for checkpoints and the final model.pt")
    parser.add_argument("--save-every", type=int, default=0, metavar="N", help="a checkpoint every N steps")
    parser.add_argument("--resume", type=Path, metavar="FILE", help="continue from this checkpoint")
    parser.add_argument("--metrics", type=Path, metavar="FILE", help="JSON lines of every step's loss (rank 0)")
    parser.add_argument(
        "--report", type=Path, help="folder where every rank writes a digest of its final weights (for checks)"
    )
    return parser


# -- data -------------------------------------------------------------------------------------


def make_data(kind: str, shape, classes: int, count: int, seed: int):
    """Inputs and labels on the CPU: a synthetic task, or scikit-learn's digits resized to `shape`."""
    generator = torch.Generator().manual_seed(seed)
    channels, height, width = shape
    if kind == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False)
        images = (images - images.mean()) / images.std()
        labels = torch.tensor(digits.target) % classes
        return images.expand(-1, channels, -1, -1).contiguous(), labels
    # Synthetic: labels from a fixed random linear teacher on low-resolution inputs, so
    # the task is learnable but not trivial.
    images = torch.randn(count, channels, height, width, generator=generator)
    teacher = torch.randn(classes, channels * 4 * 4, generator=generator)
    pooled = F.adaptive_avg_pool2d(images, 4).flatten(1)
    labels = (pooled @ teacher.T).argmax(1)
    return images, labels


def split(images, labels, held_out: float, seed: int = 0):
    """(train, held-out) pairs: a fixed fraction of the images, the same on every rank and every run."""
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    cut = len(images) - max(1, round(len(images) * held_out))
    train, test = order[:cut], order[cut:]
    return (images[train], labels[train]), (images[test], labels[test])


def load_folder(root: Path, shape) -> tuple[tuple, tuple, list[str]]:
    """An image folder as in-memory tensors: (train, held-out, class names)."""
    if (root / "train").is_dir():
        classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
        train = _read_images(root / "train", classes, shape)
        if (root / "val").is_dir():
            return train, _read_images(root / "val", classes, shape), classes
        return (*split(*train, held_out=0.1), classes)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    return (*split(*_read_images(root, classes, shape), held_out=0.1), classes)


def _read_images(folder: Path, classes: list[str], shape):
    from PIL import Image

    channels, height, width = shape
    mode = {1: "L", 3: "RGB"}.get(channels)
    if mode is None:
        raise SystemExit(f"--data {folder}: image folders give 1 or 3 channels, the spec takes {channels}")
    images, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(path) as image:
                    image = image.convert(mode).resize((width, height), Image.BILINEAR)
                    pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8)
                images.append(pixels.view(height, width, channels).permute(2, 0, 1))
                labels.append(label)
    if not images:
        raise SystemExit(f"--data {folder}: no images in class folders {folder}/CLASS/*")
    data = torch.stack(images).float() / 255.0
    return (data - data.mean()) / data.std().clamp_min(1e-6), torch.tensor(labels)


def datasets(args, shape, classes: int):
    """Training and held-out (images, labels), and a line that says what they are."""
    if args.data in ("digits", "synthetic"):
        images, labels = make_data(args.data, shape, classes, count=4096, seed=args.seed)
        train, test = split(images, labels, held_out=0.2)
        what = "scikit-learn digits" if args.data == "digits" else "synthetic images"
        return train, test, what
    root = Path(args.data)
    if not root.is_dir():
        raise SystemExit(f"--data {args.data}: not digits, synthetic or a folder")
    train, test, names = load_folder(root, shape)
    if len(names) > classes:
        raise SystemExit(f"--data {root}: {len(names)} classes, but the network has {classes} (--set classes=N)")
    return train, test, f"{root} ({len(names)} classes)"


class Batches:
    """The global batch of each step: one shuffle per epoch, seeded by the epoch, so any step can be found again."""

    def __init__(self, count: int, global_batch: int, seed: int):
        if count < global_batch:
            raise SystemExit(f"the training set has {count} images, fewer than one global batch of {global_batch}")
        self.usable = count // global_batch * global_batch  # the remainder of an epoch is dropped
        self.count, self.global_batch, self.seed = count, global_batch, seed
        self.epoch, self.order = -1, torch.empty(0, dtype=torch.long)

    def __call__(self, step: int) -> torch.Tensor:
        epoch, offset = divmod(step * self.global_batch, self.usable)
        if epoch != self.epoch:
            generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            self.epoch, self.order = epoch, torch.randperm(self.count, generator=generator)[: self.usable]
        return self.order[offset : offset + self.global_batch]


# -- training -------------------------------------------------------------------------------


def schedule(warmup: int, steps: int):
    """Learning-rate factor per step: linear warm-up, then cosine decay to zero."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    return factor


def evaluate(model: nn.Module, images, labels, rank: int, world: int, device) -> tuple[float, float, int]:
    """(accuracy, mean loss, image count) on the held-out set, each rank scoring its own share."""
    model.eval()
    totals = torch.zeros(3, dtype=torch.float64, device=device)  # correct, summed loss, count
    with torch.no_grad():
        mine = torch.arange(rank, len(images), world)
        for start in range(0, len(mine), 256):
            index = mine[start : start + 256]
            x, y = images[index].to(device), labels[index].to(device)
            logits = model(x)
            totals += torch.stack(
                [
                    (logits.argmax(1) == y).sum().double(),
                    F.cross_entropy(logits, y, reduction="sum").double(),
                    torch.tensor(len(y), dtype=torch.float64, device=device),
                ]
            )
    if world > 1:
        dist.all_reduce(totals)
    model.train()
    correct, loss, count = totals.tolist()
    return correct / count, loss / count, int(count)


def weights_digest(model: nn.Module) -> str:
    """A digest of the trainable weights, which DDP keeps identical on every rank.

    BatchNorm running statistics are left out: each rank updates them from its
    own slice of the batch (use SyncBatchNorm to share them).
    """
    digest = hashlib.sha256()
    for key, tensor in sorted(model.named_parameters()):
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save(path: Path, payload) -> None:
    """Write atomically: an interrupted save never leaves a truncated checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)


@dataclass
class Processes:
    """This process's place among the training processes, and where it runs."""

    rank: int
    world: int
    local_rank: int
    device: torch.device
    distributed: bool

    def say(self, text: str) -> None:
        """Print once, from the first process."""
        if self.rank == 0:
            print(text, flush=True)


def start_processes(args) -> Processes:
    """Join the process group when launched by torchrun; pick the device."""
    distributed = "WORLD_SIZE" in os.environ
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if distributed:
        # DistributedDataParallel imports torch._dynamo. Imported after the process group exists, it keeps
        # references to the group, so destroy_process_group() cannot free it: gloo's threads then live on
        # into interpreter shutdown, where they can abort the process ("terminate called without an active
        # exception"). Imported first, it does not.
        importlib.import_module("torch._dynamo")
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return Processes(rank, world, local_rank, device, distributed)


def resume(args, procs: Processes, module, optimizer, scheduler, overrides: dict) -> int:
    """Load `--resume`'s checkpoint into the model, optimizer and schedule; returns the step to start at."""
    if not args.resume:
        return 0
    state = torch.load(args.resume, map_location=procs.device, weights_only=True)
    if (state["spec"], state["overrides"]) != (args.spec, overrides):
        raise SystemExit(f"--resume {args.resume}: saved for {state['spec']} {state['overrides']}, not this run")
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["global_batch"] != args.batch_size * procs.world:
        procs.say(f"note: the checkpoint was trained with global batch {state['global_batch']}; the data order changes")
    if state["steps"] != args.steps:
        procs.say(f"note: the checkpoint's schedule was for {state['steps']} steps; this run's is for {args.steps}")
    return state["step"]


def train_step(model, optimizer, scheduler, x, y, procs: Processes) -> tuple[torch.Tensor, float]:
    """One step of SGD; returns the summed loss, correct count and images over all processes, and the lr used."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    lr = scheduler.get_last_lr()[0]
    scheduler.step()
    stats = torch.stack(
        [
            loss.detach().double() * len(y),
            (logits.argmax(1) == y).sum().double(),
            torch.tensor(len(y), dtype=torch.float64, device=procs.device),
        ]
    )
    if procs.distributed:
        dist.all_reduce(stats)
    return stats, lr


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    procs = start_processes(args)
    say, rank, world, device = procs.say, procs.rank, procs.world, procs.device

    overrides = dict(pair.split("=", 1) for pair in args.overrides)
    compiled = resdsl.compile(resdsl.registry.spec_source(args.spec), overrides)
    classes = compiled.output_shape[0]
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    module = compiled.to_torch().to(device)
    optimizer = torch.optim.SGD(module.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    warmup = args.warmup if args.warmup is not None else max(1, args.steps // 20)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(warmup, args.steps))
    start = resume(args, procs, module, optimizer, scheduler, overrides)
    model = module
    if procs.distributed:
        model = DistributedDataParallel(module, device_ids=[procs.local_rank] if device.type == "cuda" else None)

    (train_x, train_y), (test_x, test_y), what = datasets(args, compiled.input_shape, classes)
    batches = Batches(len(train_x), args.batch_size * world, args.seed)
    say(
        f"{compiled.name}: {compiled.params:,} parameters; {what}: {len(train_x):,} training and "
        f"{len(test_x):,} held-out images; {world} process{'es' * (world > 1)} × batch {args.batch_size} on "
        f"{device.type}; {args.steps} steps" + (f", resuming from {args.resume} at step {start}" if args.resume else "")
    )
    metrics = args.metrics.open("a" if args.resume else "w") if (args.metrics and rank == 0) else None
    window = torch.zeros(3, dtype=torch.float64, device=device)  # summed loss, correct, images since the last line
    window_start = time.perf_counter()
    began = time.perf_counter()
    model.train()
    for step in range(start, args.steps):
        index = batches(step)[rank::world]
        stats, lr = train_step(model, optimizer, scheduler, train_x[index].to(device), train_y[index].to(device), procs)
        window += stats
        done = step + 1
        if metrics:
            metrics.write(json.dumps({"step": done, "loss": stats[0].item() / stats[2].item(), "lr": lr}) + "\n")
        if done % args.log_every == 0 or done == args.steps:
            seconds = time.perf_counter() - window_start
            total_loss, correct, seen = window.tolist()
            say(
                f"step {done:>{len(str(args.steps))}}/{args.steps}  loss {total_loss / seen:.4f}  "
                f"acc {100 * correct / seen:5.1f}%  {seen / seconds:,.0f} img/s  lr {lr:.4g}"
            )
            window.zero_()
            window_start = time.perf_counter()
        paused = time.perf_counter()  # evaluating and saving do not count against images/s
        if args.eval_every and done % args.eval_every == 0 and done != args.steps:
            accuracy, held_loss, count = evaluate(module, test_x, test_y, rank, world, device)
            say(
                f"eval at step {done}: held-out accuracy {100 * accuracy:.1f}% of {count:,} images, "
                f"loss {held_loss:.4f}"
            )
        if args.out and rank == 0 and ((args.save_every and done % args.save_every == 0) or done == args.steps):
            checkpoint = args.out / f"checkpoint-{done:06d}.pt"
            save(
                checkpoint,
                {
                    "model": module.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "step": done,
                    "steps": args.steps,
                    "spec": args.spec,
                    "overrides": overrides,
                    "global_batch": args.batch_size * world,
                },
            )
            say(f"saved {checkpoint}")
        window_start += time.perf_counter() - paused
    if metrics:
        metrics.close()
    finish(
        args, procs, module, (test_x, test_y), f"steps {start + 1}-{args.steps} in {time.perf_counter() - began:.1f} s"
    )
    if procs.distributed:
        del model  # DDP's reducer holds the process group: without it, destroying the group frees it
        leave()


def finish(args, procs: Processes, module, held_out, what: str) -> None:
    """The final held-out evaluation, the rank's weight digest (--report) and the final weights (--out)."""
    accuracy, held_loss, count = evaluate(module, *held_out, procs.rank, procs.world, procs.device)
    procs.say(f"done: {what}; final held-out accuracy {100 * accuracy:.1f}% of {count:,} images, loss {held_loss:.4f}")
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / f"rank{procs.rank}.txt").write_text(weights_digest(module))
    if args.out and procs.rank == 0:
        save(args.out / "model.pt", module.state_dict())
        procs.say(f"saved {args.out / 'model.pt'} (load it with model.load_state_dict(torch.load(...)))")


def leave() -> None:
    """Leave the process group once every rank is done, joining its threads before the interpreter shuts down."""
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.exit(main())
