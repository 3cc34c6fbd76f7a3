"""Train any resdsl spec with DistributedDataParallel.

One process:            python examples/train.py cifar_resnet20 --steps 100
Several (CPU, gloo):    torchrun --standalone --nproc_per_node=2 examples/train.py cifar_resnet20
GPUs (NCCL):            torchrun --standalone --nproc_per_node=4 examples/train.py resnet50 --device cuda

SPEC is a bundled model name (`resdsl.list_models()`) or a .res path. Data is
synthetic by default; `--data digits` uses scikit-learn's bundled 8×8 digits
(upsampled to the spec's input size), which needs no download. Rank 0 writes
the final weights with `--checkpoint`; the generated module loads them with
`load_state_dict`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

import resdsl


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("spec", help="bundled model name or .res path")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=32, help="per process")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--data", choices=("synthetic", "digits"), default="synthetic")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint", type=Path, help="where rank 0 saves the final state_dict")
    parser.add_argument("--log", type=Path, help="JSON lines of (step, loss) written by rank 0")
    parser.add_argument(
        "--report", type=Path, help="folder where every rank writes a digest of its final weights (for checks)"
    )
    return parser.parse_args(argv)


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


def main(argv=None) -> None:
    args = parse_args(argv)
    distributed = "WORLD_SIZE" in os.environ
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if distributed:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device(f"cuda:{local_rank}" if args.device == "cuda" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)

    overrides = dict(pair.split("=", 1) for pair in args.overrides)
    compiled = resdsl.compile(resdsl.registry.spec_source(args.spec), overrides)
    torch.manual_seed(args.seed)  # the same initial weights on every rank
    model = compiled.to_torch().to(device)
    if distributed:
        model = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda" else None)

    images, labels = make_data(
        args.data,
        compiled.input_shape,
        compiled.output_shape[0],
        count=max(1024, args.batch_size * world * 4),
        seed=args.seed,
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    # Each rank takes its own slice of every global batch.
    generator = torch.Generator().manual_seed(args.seed)
    log = args.log.open("w") if (args.log and rank == 0) else None
    model.train()
    for step in range(args.steps):
        order = torch.randperm(len(images), generator=generator)[: args.batch_size * world]
        mine = order[rank::world]
        x, y = images[mine].to(device), labels[mine].to(device)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if log:
            log.write(json.dumps({"step": step, "loss": loss.item()}) + "\n")
    if log:
        log.close()

    module = model.module if distributed else model
    if args.report:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / f"rank{rank}.txt").write_text(weights_digest(module))
    if args.checkpoint and rank == 0:
        args.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(module.state_dict(), args.checkpoint)
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
