"""Bounds on what a spec may ask for, so an absurd spec fails fast instead of eating the machine.

Every bound is checked before the graph grows past it or any weight memory is
allocated: source size while files are read; block instances and ops counted
from the repeat counts before any block is expanded; channels and spatial
sizes while lowering; tensor sizes, parameters and MACs after shape
inference. The defaults keep `resdsl check` of any spec within them under
10 seconds on a laptop (bench/limits.py measures it; docs/errors.md has the
numbers) and its PyTorch module within reach of one. Raise a bound with
`resdsl ... --limit NAME=VALUE` or `compile(..., limits={NAME: VALUE})`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from .diagnostics import Span, error


@dataclass(frozen=True)
class Limits:
    source_bytes: int = 100_000  # the spec and every file it uses, together
    channels: int = 65_536  # channels of any tensor, output features of a linear layer
    spatial: int = 65_536  # input height and width, kernel sizes, strides, paddings, dilations
    blocks: int = 10_000  # block instances in the whole network
    nodes: int = 20_000  # ops the spec writes, each repetition of a block counted (IR nodes built by lowering)
    params: int = 10**10  # trainable parameters of the whole network
    activations: int = 2**28  # elements of the largest tensor for one input (1 GiB of float32)
    macs: int = 10**12  # multiply-accumulates of one forward pass for one input

    @classmethod
    def from_options(cls, options: Mapping[str, int | str] | None) -> Limits:
        """Limits with `options` (NAME → VALUE) applied; a bad option is an E0302 error."""
        limits = cls()
        names = [f.name for f in fields(cls)]
        for name, raw in (options or {}).items():
            if name not in names:
                raise error("E0302", f"--limit {name}: no such limit", help="limits: " + ", ".join(names))
            text = str(raw).strip()
            # ASCII digits only, as in a spec (int() also reads other scripts' digits).
            if not (text.isascii() and text.lstrip("+-").isdigit()):
                raise error("E0302", f"--limit {name}={raw}: expected a positive integer")
            value = int(text)
            if value < 1:
                raise error("E0302", f"--limit {name}={raw}: expected a positive integer")
            limits = replace(limits, **{name: value})
        return limits

    def check(self, name: str, value: int, what: str, span: Span | None, label: str = "too large") -> None:
        """Raise E0120 when `value` exceeds the limit `name`."""
        bound = getattr(self, name)
        if value > bound:
            raise error(
                "E0120",
                f"{what} is {value:,}, over the limit of {bound:,}",
                span,
                label,
                f"if you really mean it, raise the limit with `--limit {name}={value}`",
            )
