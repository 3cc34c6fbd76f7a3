"""The command line: the only module that prints or exits.

Exit codes: 0 success, 1 a mistake in the spec, 2 a usage mistake, 3 an
internal error (a resdsl bug; please report it).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .diagnostics import ResdslError

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

# Default output per emit: a file named after the spec, or standard output ("-") for the IR dump.
EMITS = {"torch": ".py", "ir": "-", "onnx": ".onnx"}
ONNX_OPSETS = tuple(range(13, 22))  # backends/onnx_graph.OPSETS, kept here so the CLI never imports onnx
RENDER_FORMATS = ("svg", "png", "pdf", "dot", "html")


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resdsl",
        description="Compile .res residual-network specs into PyTorch source, summaries and more.",
    )
    parser.add_argument("--version", action="version", version=f"resdsl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str, compiles: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("spec", metavar="SPEC", help="a .res file")
        p.add_argument(
            "--error-format",
            choices=("human", "json"),
            default="human",
            help="how spec errors are printed (json is for editors and CI)",
        )
        p.add_argument(
            "--limit",
            dest="limits",
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help="raise a size limit, e.g. --limit channels=200000 (see docs/errors.md, E0120)",
        )
        if compiles:
            p.add_argument(
                "--set",
                dest="overrides",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="override a network setting or policy, e.g. --set classes=10 --set norm=pre",
            )
        return p

    build = command("build", "Compile a spec to PyTorch source (or dump its IR).")
    build.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file ('-' for standard output; default: the spec's name with .py or .onnx, "
        "and standard output for --emit ir)",
    )
    build.add_argument("--emit", choices=tuple(EMITS), default="torch", help="what to generate (default: torch)")
    onnx = build.add_argument_group("ONNX (--emit onnx)")
    onnx.add_argument("--opset", type=int, choices=ONNX_OPSETS, metavar="N", help="ONNX opset, 13-21 (default 17)")
    onnx.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the conv before it")
    onnx.add_argument("--weights", metavar="FILE", help="a state_dict (.pt, .pth), .safetensors or .npz file")
    onnx.add_argument("--seed", type=int, metavar="N", help="seed of the default initialisation (default 0)")
    onnx.add_argument(
        "--external-data",
        action="store_true",
        help="write the weights to OUTPUT.data beside the model (automatic past protobuf's 2 GiB)",
    )

    check = command("check", "Parse and validate a spec; exit 0 when valid, 1 otherwise.")
    check.add_argument("-v", "--verbose", action="store_true", help="list the shortcuts and norms the passes placed")

    summary = command("summary", "Per-layer output shapes, parameters and MACs, with totals.")
    summary.add_argument("--format", choices=("table", "json"), default="table")
    summary.add_argument("--flops", action="store_true", help="report FLOPs (2 × MACs) instead of MACs")

    render = command(
        "render",
        "Draw the architecture: SVG, PNG or PDF (with Graphviz's dot), DOT text, or an interactive HTML page.",
    )
    render.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="FILE.svg, .png, .pdf, .dot or .html ('-' writes DOT, or --format, to standard output; "
        "default: the spec's name with the format's suffix)",
    )
    render.add_argument(
        "--format",
        choices=RENDER_FORMATS,
        help="what to write (default: from the output's suffix, else svg); html is one self-contained "
        "page that expands stages and blocks in place",
    )
    render.add_argument(
        "--level",
        choices=("stage", "block", "op"),
        help="detail: one node per stage, per residual block (default for images) or per op; "
        "the page opens at stage level unless told",
    )
    render.add_argument(
        "--rankdir", choices=("TB", "LR"), default="TB", help="flow top to bottom (default) or left to right"
    )

    run = sub.add_parser(
        "run",
        help="Run an ONNX model on a .npy input with onnxruntime (CUDA when available).",
        description="Run an ONNX model on a .npy input with onnxruntime (CUDA when available).",
    )
    run.add_argument("model", metavar="MODEL", help="an .onnx file")
    run.add_argument("--input", required=True, metavar="X.npy", help="N×C×H×W (or one C×H×W) float array")
    run.add_argument("-o", "--output", metavar="OUT.npy", help="save the output array here")
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where onnxruntime runs the model (auto: CUDA when installed, else CPU)",
    )

    fmt = command("fmt", "Rewrite a spec in canonical layout, keeping its comments.", compiles=False)
    fmt.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when the file is not formatted (for CI)"
    )
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def _pairs(option: str, pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _UsageError(f"{option} expects KEY=VALUE, got {pair!r}")
        result[key.strip()] = value.strip()
    return result


def _limits(args):
    from .limits import Limits

    return Limits.from_options(_pairs("--limit", args.limits))


def _compile(args):
    from .api import compile

    return compile(Path(args.spec), _pairs("--set", args.overrides), _limits(args))


def _write(output: str, data: str | bytes, what: str) -> None:
    from .io import write_atomic

    if output == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    write_atomic(output, data)
    print(f"wrote {output} ({what})", file=sys.stderr)


def cmd_build(args) -> int:
    compiled = _compile(args)
    suffix = EMITS[args.emit]
    output = args.output or ("-" if suffix == "-" else Path(args.spec).name.removesuffix(".res") + suffix)
    if output != "-" and Path(output).resolve() == Path(args.spec).resolve():
        raise _UsageError(f"refusing to overwrite the input spec {args.spec}")
    onnx_options = {
        "opset": args.opset,
        "fold_bn": args.fold_bn or None,
        "weights": args.weights,
        "seed": args.seed,
        "external_data": args.external_data or None,
    }
    given = [f"--{k.replace('_', '-')}" for k, v in onnx_options.items() if v is not None]
    if given and args.emit != "onnx":
        raise _UsageError(f"{', '.join(given)} only apply to --emit onnx")
    if args.weights is not None and args.seed is not None:
        raise _UsageError("--seed chooses the default initialisation; it cannot go with --weights")
    if args.emit == "ir":
        _write(output, compiled.ir_text, "IR")
    elif args.emit == "onnx":
        options = {"seed": args.seed or 0, "opset": args.opset or 17, "fold_bn": args.fold_bn}
        if output == "-":
            if args.external_data:
                raise _UsageError("--external-data needs an output file (-o FILE), not standard output")
            from .backends.onnx_graph import PROTOBUF_LIMIT

            model = compiled.to_onnx(args.weights, **options)
            size = model.ByteSize()
            if size > PROTOBUF_LIMIT:
                raise _UsageError(
                    f"the model takes {size / 2**30:.1f} GiB, past protobuf's 2 GiB: "
                    "write it to a file (-o FILE), which puts the weights in external data"
                )
            _write(output, model.SerializeToString(), "ONNX")
        else:
            data = compiled.save_onnx(output, args.weights, external_data=args.external_data, **options)
            where = f"; weights in {data}" if data else ""
            print(
                f"wrote {output} (ONNX opset {options['opset']}, {compiled.params:,} parameters{where})",
                file=sys.stderr,
            )
    else:
        _write(output, compiled.torch_source, f"PyTorch, {compiled.params:,} parameters")
    return EXIT_OK


def cmd_check(args) -> int:
    compiled = _compile(args)
    print(f"ok: {compiled.name}: {compiled.params:,} parameters, {compiled.macs / 1e9:.3f} GMACs")
    if args.verbose:
        from .backends.report import inserted

        for line in inserted(compiled.graph):
            print(f"  {line}")
    return EXIT_OK


def cmd_summary(args) -> int:
    compiled = _compile(args)
    sys.stdout.write(compiled.summary(args.format, args.flops))
    return EXIT_OK


def _render_format(args) -> tuple[str, str]:
    """The output and its format, from -o and --format (the suffix decides when --format is not given)."""
    if args.output is None:
        fmt = args.format or "svg"
        return Path(args.spec).name.removesuffix(".res") + "." + fmt, fmt
    if args.output == "-":
        return "-", args.format or "dot"
    suffix = Path(args.output).suffix.lstrip(".").lower()
    if args.format is None and suffix not in RENDER_FORMATS:
        raise _UsageError(f"cannot tell the format of {args.output!r}: name it .svg, .png, .pdf, .dot or .html")
    if args.format and suffix in RENDER_FORMATS and suffix != args.format:
        raise _UsageError(f"{args.output!r} is named .{suffix}, but --format says {args.format}")
    return args.output, args.format or suffix


def cmd_render(args) -> int:
    output, fmt = _render_format(args)
    if output != "-" and Path(output).resolve() == Path(args.spec).resolve():
        raise _UsageError(f"refusing to overwrite the input spec {args.spec}")
    if fmt == "html" and args.rankdir != "TB":
        raise _UsageError("the interactive page flows top to bottom; --rankdir applies to images and DOT")
    compiled = _compile(args)
    if fmt == "html":
        level = args.level or "stage"
        _write(output, compiled.to_html(level=level), f"interactive page, opens at {level} level")
        return EXIT_OK
    from .backends.dot import SCREEN_PX, RenderError, render_measured

    level = args.level or "block"
    try:
        text = compiled.to_dot(level=level, rankdir=args.rankdir)
        if fmt == "dot":
            _write(output, text, f"{level}-level diagram, DOT")
            return EXIT_OK
        data, readability = render_measured(text, fmt)
    except RenderError as exc:
        raise _UsageError(str(exc)) from None
    _write(output, data, f"{level}-level diagram, {fmt.upper()}")
    if not readability.readable:
        print(
            f"note: this diagram is too large to read whole: at {SCREEN_PX} pixels wide its smallest text is "
            f"{readability.smallest_px:.1f} pixels high. Zoom into it, draw a coarser --level, or explore it "
            f"interactively: resdsl render {args.spec} --format html",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_run(args) -> int:
    import numpy as np

    from .runner import RunError, run

    try:
        batch = np.load(args.input, allow_pickle=False)
        output, provider = run(args.model, batch, args.device)
    except (OSError, ValueError, RunError) as exc:
        raise _UsageError(str(exc)) from None
    print(f"ran {Path(args.model).name} on {provider}: output {'x'.join(map(str, output.shape))}", file=sys.stderr)
    if output.ndim == 2:
        for row, scores in enumerate(output):
            print(f"{row}: class {int(scores.argmax())} ({float(scores.max()):.6g})")
    if args.output:
        import io

        buffer = io.BytesIO()
        np.save(buffer, output)
        _write(args.output, buffer.getvalue(), "output array")
    return EXIT_OK


def cmd_fmt(args) -> int:
    from .frontend.format import format_source
    from .frontend.loader import read_source
    from .io import write_atomic

    source = read_source(args.spec, _limits(args))
    formatted = format_source(source)
    if formatted == source.text:
        return EXIT_OK
    if args.check:
        print(f"{args.spec}: not formatted (run `resdsl fmt {args.spec}`)", file=sys.stderr)
        return EXIT_SPEC
    write_atomic(args.spec, formatted)
    print(f"formatted {args.spec}", file=sys.stderr)
    return EXIT_OK


COMMANDS = {
    "build": cmd_build,
    "check": cmd_check,
    "summary": cmd_summary,
    "render": cmd_render,
    "run": cmd_run,
    "fmt": cmd_fmt,
}


def _use_color(stream) -> bool:
    return "NO_COLOR" not in os.environ and hasattr(stream, "isatty") and stream.isatty()


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # Run as the program: nothing here does linear algebra, and OpenBLAS's
        # worker threads, started when NumPy is imported, would spin on every core.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ResdslError as exc:
        if getattr(args, "error_format", "human") == "json":
            print(exc.to_json())
        else:
            print(exc.render(color=_use_color(sys.stderr)), file=sys.stderr)
        return EXIT_SPEC
    except _UsageError as exc:
        print(f"resdsl {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug in resdsl, not in the spec
        if os.environ.get("RESDSL_DEBUG"):
            raise
        print(
            f"internal error: {type(exc).__name__}: {exc}\n"
            "This is a bug in resdsl, not in your spec. Please report it with the spec "
            "(set RESDSL_DEBUG=1 for a traceback).",
            file=sys.stderr,
        )
        return EXIT_INTERNAL
