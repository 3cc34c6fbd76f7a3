"""The command line: the only module that prints or exits.

Exit codes: 0 success, 1 a mistake in the spec, 2 a usage mistake (a bad
option, a missing optional package, a file that cannot be written), 3 an
internal error (a resdsl bug; please report it).

Wherever a command takes a SPEC, it may be a .res file, a bundled model's
name (`resnet50`, see `resdsl.list_models()`), or `-` for standard input.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import Diagnostic, ResdslError, ResdslWarning, Source, display_name, printable
from .extras import MissingDependency, require

if TYPE_CHECKING:
    from .api import Compiled

EXIT_OK, EXIT_SPEC, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_PIPE = 128 + 13  # what a shell reports for a process ended by SIGPIPE

# Default output per emit without -o: standard output for text, a file named after the spec for ONNX.
EMITS = {"torch": "-", "ir": "-", "onnx": ".onnx"}
ONNX_OPSETS = tuple(range(13, 22))  # backends/onnx_graph.OPSETS, kept here so the CLI never imports onnx
SHELLS = ("bash", "zsh", "fish")
SPEC_HELP = "a .res file, a bundled model's name (resnet50), or - for standard input"
RENDER_FORMATS = ("svg", "png", "pdf", "dot", "html")


class _UsageError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="resdsl",
        description="Compile .res residual-network specs into PyTorch source, ONNX, summaries and diagrams.",
        epilog="SPEC is a .res file, a bundled model's name (resnet50) or - for standard input. "
        "`resdsl COMMAND --help` describes a command.",
    )
    parser.add_argument("--version", action="version", version=f"resdsl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, help_text: str, compiles: bool = True, several: bool = False) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        if several:
            p.add_argument("spec", metavar="SPEC", nargs="+", help=SPEC_HELP + "; several may be given")
        else:
            p.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
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
            p.add_argument(
                "--use-path",
                dest="use_path",
                action="append",
                default=[],
                metavar="DIR",
                help="a folder `use` may also read and searches after the using file's own "
                "(repeatable; $RESDSL_PATH adds more)",
            )
        return p

    build = command("build", "Compile a spec to PyTorch source, its IR, or ONNX.")
    build.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file ('-' for standard output; default: standard output for torch and ir, "
        "the spec's name with .onnx for onnx)",
    )
    build.add_argument("--emit", choices=tuple(EMITS), default="torch", help="what to generate (default: torch)")
    onnx = build.add_argument_group("ONNX (--emit onnx)")
    onnx.add_argument("--opset", type=int, choices=ONNX_OPSETS, metavar="N", help="ONNX opset, 13-21 (default 17)")
    batchnorm = onnx.add_mutually_exclusive_group()
    batchnorm.add_argument(
        "--fold-bn",
        dest="fold_bn",
        action="store_const",
        const=True,
        help="fold each BatchNorm that follows a conv into that conv (the default)",
    )
    batchnorm.add_argument(
        "--keep-bn",
        dest="fold_bn",
        action="store_const",
        const=False,
        help="keep every BatchNorm as a BatchNormalization node (to train the graph or fold it elsewhere)",
    )
    onnx.add_argument(
        "--weights", metavar="FILE", help="a state_dict: .pt or .pth (read without PyTorch), .safetensors or .npz"
    )
    onnx.add_argument("--seed", type=int, metavar="N", help="seed of the default initialisation (default 0)")
    onnx.add_argument(
        "--external-data",
        action="store_true",
        help="write the weights to OUTPUT.data beside the model (automatic past protobuf's 2 GiB)",
    )

    check = command("check", "Parse and validate specs; exit 0 when all are valid, 1 otherwise.", several=True)
    check.add_argument("-v", "--verbose", action="store_true", help="list the shortcuts and norms the passes placed")

    summary = command("summary", "Per-layer output shapes, parameters and MACs, with totals.")
    summary.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="a text table (default), or JSON with every layer and the totals",
    )
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
    run.add_argument(
        "-o", "--output", metavar="OUT.npy", help="save the output array here (OUT.npz: every output, by name)"
    )
    run.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where onnxruntime runs the model (auto: CUDA when installed, else CPU)",
    )

    fmt = command(
        "fmt",
        "Rewrite specs in canonical layout, keeping their comments "
        "(a bundled model or - is written to standard output).",
        compiles=False,
        several=True,
    )
    fmt.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 when a file is not formatted (for CI)"
    )

    completion = sub.add_parser(
        "completion",
        help="Print a shell completion script.",
        description="Print a shell completion script, e.g. `source <(resdsl completion bash)` in ~/.bashrc, "
        "`resdsl completion zsh > ~/.zfunc/_resdsl`, or "
        "`resdsl completion fish > ~/.config/fish/completions/resdsl.fish`.",
    )
    completion.add_argument("shell", choices=SHELLS, help="the shell to complete in")
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


def _source(spec: str, limits) -> Source:
    """The text of SPEC: standard input for `-`, a bundled model by name, else a file."""
    from .registry import is_model_name, spec_source

    if spec == "-":
        from .frontend.loader import decode

        data = sys.stdin.buffer.read()
        limits.check("source_bytes", len(data), "the size of standard input in bytes", None)
        return Source("<stdin>", decode(data, "<stdin>"))
    if is_model_name(spec):
        return spec_source(spec)
    from .frontend.loader import read_source

    return read_source(spec, limits)


def _compile(args, spec: str | None = None) -> Compiled:
    from .api import compile

    limits = _limits(args)
    source = _source(spec or args.spec, limits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResdslWarning)  # printed below, once, in the chosen format
        compiled = compile(source, _pairs("--set", args.overrides), limits, args.use_path)
    if args.error_format == "human" and compiled.warnings:
        _diagnostics("\n\n".join(w.render(color=_use_color(sys.stderr)) for w in compiled.warnings))
    return compiled


_printed = False  # whether a report is on standard error already: the next is set off by a blank line


def _diagnostics(text: str) -> None:
    global _printed
    print(("\n" if _printed else "") + text, file=sys.stderr)
    _printed = True


def _stem(spec: str, compiled: Compiled) -> str:
    """The base name of outputs: the spec file's name without .res, or the network's name for `-`."""
    return compiled.name if spec == "-" else Path(spec).name.removesuffix(".res")


def _note(text: str) -> None:
    """A line for the user on standard error; paths in it are theirs, so print them escaped."""
    print(printable(display_name(text)), file=sys.stderr)


def _same_file(a: str | Path, b: str | Path) -> bool:
    try:
        return os.path.samefile(a, b)  # hard links too
    except (OSError, ValueError):  # one of them does not exist
        return os.path.realpath(a) == os.path.realpath(b)


def _is_file_spec(spec: str) -> bool:
    """Whether SPEC names a file (not standard input or a bundled model)."""
    from .registry import is_model_name

    return spec != "-" and not is_model_name(spec)


def _check_output(output: str | Path, inputs) -> None:
    """Refuse to write where the command reads: the spec, a file it uses, weights, an input array."""
    if str(output) == "-":
        return
    for item in inputs:
        if item is not None and _same_file(output, item):
            raise _UsageError(f"refusing to overwrite the input {item}")
    if Path(output).is_dir():
        raise _UsageError(f"{output} is a directory; name a file to write")


@contextmanager
def _writing(output: str | Path):
    """Report a file that cannot be written (no such folder, no permission, a full disk) as a usage error."""
    try:
        yield
    except OSError as exc:
        raise _UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def _write(output: str, data: str | bytes, what: str) -> None:
    from .io import write_atomic

    if output == "-":
        if isinstance(data, bytes):
            sys.stdout.buffer.write(data)
        else:
            sys.stdout.write(data)
        return
    with _writing(output):
        write_atomic(output, data)
    _note(f"wrote {output} ({what})")


def cmd_build(args) -> int:
    onnx_options = {
        "--opset": args.opset,
        "--fold-bn": args.fold_bn or None,
        "--keep-bn": args.fold_bn is False or None,
        "--weights": args.weights,
        "--seed": args.seed,
        "--external-data": args.external_data or None,
    }
    given = [flag for flag, value in onnx_options.items() if value is not None]
    if given and args.emit != "onnx":
        verb = "applies" if len(given) == 1 else "apply"
        raise _UsageError(f"{', '.join(given)} only {verb} to --emit onnx")
    if args.weights is not None and args.seed is not None:
        raise _UsageError("--seed chooses the default initialisation; it cannot go with --weights")
    if args.emit == "onnx":
        require("--emit onnx", ("onnx", "numpy"), "onnx")
    if args.output is not None and _is_file_spec(args.spec):
        _check_output(args.output, [args.spec])  # before compiling: the cheap, common mistake
    compiled = _compile(args)
    suffix = EMITS[args.emit]
    output = args.output or ("-" if suffix == "-" else _stem(args.spec, compiled) + suffix)
    inputs = [*compiled.files, args.weights]
    _check_output(output, inputs)
    if args.emit == "onnx" and output != "-":
        _check_output(output + ".data", inputs)  # where external data would go
    if args.emit == "ir":
        _write(output, compiled.ir_text, "IR")
    elif args.emit == "onnx":
        options: dict[str, Any] = {
            "seed": args.seed or 0,
            "opset": args.opset or 17,
            "fold_bn": args.fold_bn is not False,
        }
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
            with _writing(output):
                data = compiled.save_onnx(output, args.weights, external_data=args.external_data, **options)
            where = f"; weights in {data}" if data else ""
            _note(f"wrote {output} (ONNX opset {options['opset']}, {compiled.params:,} parameters{where})")
    else:
        _write(output, compiled.torch_source, f"PyTorch, {compiled.params:,} parameters")
    return EXIT_OK


def cmd_check(args) -> int:
    from .backends.report import inserted

    errors: list[Diagnostic] = []
    found: list[Diagnostic] = []
    networks = []
    for spec in args.spec:
        try:
            compiled = _compile(args, spec)
        except ResdslError as exc:
            errors += exc.diagnostics
            if args.error_format == "human":
                _diagnostics(exc.render(color=_use_color(sys.stderr)))
            continue
        found += compiled.warnings
        network = {"spec": spec, "name": compiled.name, "params": compiled.params, "macs": compiled.macs}
        if args.verbose:
            network["placed"] = inserted(compiled.ir)
        networks.append(network)
        if args.error_format == "human":
            print(f"ok: {compiled.name}: {compiled.params:,} parameters, {compiled.macs / 1e9:.3f} GMACs")
            for line in network.get("placed", ()):
                print(f"  {line}")
    if args.error_format == "json":
        print(_json_report(errors, found, networks=networks))
    elif len(args.spec) > 1:
        failed = len(args.spec) - len(networks)
        print(f"{len(networks)} of {len(args.spec)} specs valid" + (f", {failed} with errors" if failed else ""))
    return EXIT_SPEC if errors else EXIT_OK


def _json_report(errors: list[Diagnostic], found: list[Diagnostic], **extra) -> str:
    """One JSON document: `ok`, the `errors` and `warnings` (each a diagnostic), and what the command adds."""
    report = {"ok": not errors, "errors": [e.to_json() for e in errors], "warnings": [w.to_json() for w in found]}
    return json.dumps({**report, **extra}, indent=2)


def cmd_summary(args) -> int:
    compiled = _compile(args)
    sys.stdout.write(compiled.summary(args.format, args.flops))
    return EXIT_OK


def _render_format(args) -> tuple[str | None, str]:
    """The output (None: named after the spec) and its format, from -o and --format.

    The output's suffix decides when --format is not given.
    """
    if args.output is None:
        return None, args.format or "svg"
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
    if fmt == "html" and args.rankdir != "TB":
        raise _UsageError("the interactive page flows top to bottom; --rankdir applies to images and DOT")
    if output is not None and _is_file_spec(args.spec):
        _check_output(output, [args.spec])
    compiled = _compile(args)
    output = output or _stem(args.spec, compiled) + "." + fmt
    _check_output(output, compiled.files)
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
            f"interactively: resdsl render {shlex.quote(args.spec)} --format html",
            file=sys.stderr,
        )
    return EXIT_OK


def cmd_run(args) -> int:
    require("resdsl run", ("numpy", "onnxruntime"), "onnx")
    import numpy as np

    from .runner import RunError, run_all

    if args.output:
        _check_output(args.output, [args.model, args.input])
    try:
        batch = np.load(args.input, allow_pickle=False)
        outputs, provider = run_all(args.model, batch, args.device)
    except (OSError, ValueError, RunError) as exc:
        raise _UsageError(str(exc)) from None
    output = next(iter(outputs.values()))
    if len(outputs) == 1:
        _note(f"ran {Path(args.model).name} on {provider}: output {'x'.join(map(str, output.shape))}")
    else:  # named outputs (a feature pyramid): `-o OUT.npz` saves them all
        shown = ", ".join(f"{name} {'x'.join(map(str, array.shape))}" for name, array in outputs.items())
        _note(f"ran {Path(args.model).name} on {provider}: outputs {shown}")
    if output.ndim == 2:
        for row, scores in enumerate(output):
            print(f"{row}: class {int(scores.argmax())} ({float(scores.max()):.6g})")
    if args.output:
        import io

        buffer = io.BytesIO()
        if str(args.output).endswith(".npz"):  # every output, by its name: np.savez's format, written here
            import zipfile  # so that an output named `allow_pickle` is an array, not savez's keyword

            with zipfile.ZipFile(buffer, "w") as archive:
                for name, array in outputs.items():
                    with archive.open(f"{name}.npy", "w") as member:
                        np.lib.format.write_array(member, np.asarray(array), allow_pickle=False)
        else:
            np.save(buffer, output)
        _write(args.output, buffer.getvalue(), "output array")
    return EXIT_OK


def cmd_fmt(args) -> int:
    from .frontend.format import format_source
    from .io import write_atomic
    from .registry import is_model_name

    limits = _limits(args)
    errors: list[Diagnostic] = []
    unformatted: list[str] = []
    for spec in args.spec:
        try:
            source = _source(spec, limits)
            formatted = format_source(source)
        except ResdslError as exc:
            errors += exc.diagnostics
            if args.error_format == "human":
                _diagnostics(exc.render(color=_use_color(sys.stderr)))
            continue
        in_place = spec != "-" and not is_model_name(spec)
        if not in_place and not args.check:
            sys.stdout.write(formatted)
        elif formatted != source.text:
            unformatted.append(spec)
            if args.check:
                if args.error_format == "human":
                    _note(f"{spec}: not formatted (run `resdsl fmt {spec}`)")
            else:
                with _writing(spec):
                    write_atomic(spec, formatted)
                if args.error_format == "human":
                    _note(f"formatted {spec}")
    if args.error_format == "json":
        print(_json_report(errors, [], **{"unformatted" if args.check else "formatted": unformatted}))
    if errors or (args.check and unformatted):
        return EXIT_SPEC
    return EXIT_OK


def cmd_completion(args) -> int:
    from .completion import script

    sys.stdout.write(script(_parser(), args.shell))
    return EXIT_OK


COMMANDS = {
    "build": cmd_build,
    "check": cmd_check,
    "summary": cmd_summary,
    "render": cmd_render,
    "run": cmd_run,
    "fmt": cmd_fmt,
    "completion": cmd_completion,
}


def _use_color(stream) -> bool:
    """Colour on a terminal; never with a non-empty NO_COLOR; always with a non-empty FORCE_COLOR."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    return hasattr(stream, "isatty") and stream.isatty()


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        # Run as the program: nothing here does linear algebra, and OpenBLAS's
        # worker threads, started when NumPy is imported, would spin on every core.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    global _printed
    _printed = False
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_OK
    try:
        try:
            return _run(args)
        finally:
            sys.stdout.flush()  # here, so that a closed pipe is reported below, not at exit
    except BrokenPipeError:
        # The reader went away (`resdsl check -v | head -1`): stop quietly, as other tools do
        # when SIGPIPE ends them, and keep Python from failing again to flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        for stream in (sys.stdout, sys.stderr):
            os.dup2(devnull, stream.fileno())
        return EXIT_PIPE


def _run(args) -> int:
    try:
        return COMMANDS[args.command](args)
    except ResdslError as exc:
        if getattr(args, "error_format", "human") == "json":
            print(exc.to_json())
        else:
            _diagnostics(exc.render(color=_use_color(sys.stderr)))
        return EXIT_SPEC
    except (_UsageError, MissingDependency) as exc:
        _note(f"resdsl {args.command}: error: {exc}")
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        raise  # the reader of our output is gone: main() ends quietly
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
