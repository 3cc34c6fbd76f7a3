"""Spec mistakes: exit 1, a located message with the line and a caret, never a traceback."""

from __future__ import annotations

import pytest

HEADER = 'use "std/blocks.res"\nnetwork net {\n  input 3x32x32\n'

CASES = {
    "incompatible_add": (
        "block shrink(c) {\n  conv1 = conv(c, k=3)\n  add input\n}\n"
        "network net {\n  input 16x8x8\n  policy shortcut = A\n  b = shrink(8)\n}\n",
        "E0203",
        "residual add needs equal shapes: main 8×8×8, shortcut 16×8×8",
        "  add input",
        "  ^^^^^^^^^",
    ),
    "classes_with_equals": (
        HEADER + "  classes = 200\n  conv1 = conv(16, k=3)\n}\n",
        "E0001",
        "unexpected `=`: `classes` takes its value without one",
        "  classes = 200",
        "          ^ no `=` here",
    ),
    "input_with_equals": (
        "network net {\n  input = 1x28x28  # MNIST\n  conv1 = conv(16, k=3)\n}\n",
        "E0001",
        "unexpected `=`: `input` takes its value without one",
        "  input = 1x28x28  # MNIST",
        "        ^ no `=` here",
    ),
    "preact_means_pre": (
        HEADER + "  policy norm = preact\n  conv1 = conv(16, k=3)\n}\n",
        "E0113",
        "`preact` is not a norm policy",
        "  policy norm = preact",
        "                ^^^^^^ unknown value",
    ),
    "misspelled_keyword": (
        'use "std/blocks.res"\nnetwrok net {\n}\n',
        "E0001",
        "unexpected `netwrok`",
        "netwrok net {",
        "^^^^^^^",
    ),
    "unknown_block": (
        HEADER + "  conv1 = conv(16, k=3)\n  layer1 = bottlenek(16) x 2\n}\n",
        "E0101",
        "unknown op or block `bottlenek`",
        "  layer1 = bottlenek(16) x 2",
        "           ^^^^^^^^^ not defined",
    ),
    "too_many_arguments": (
        HEADER + "  conv1 = conv(16, 3, 1, 1, 1, 1, false, true, 9)\n}\n",
        "E0102",
        "`conv` takes at most 8 positional arguments, got 9",
        "  conv1 = conv(16, 3, 1, 1, 1, 1, false, true, 9)",
        " " * 47 + "^ extra argument",
    ),
    "missing_argument": (
        HEADER + "  layer1 = basic() x 2\n}\n",
        "E0103",
        "block `basic` needs its `planes` argument",
        "  layer1 = basic() x 2",
        "  ^^^^^^^^^^^^^^^^^^^^",
    ),
    "spatial_size_to_zero": (
        'use "std/blocks.res"\nnetwork net {\n  input 3x8x8\n  conv1 = conv(8, k=3, s=2)\n'
        "  conv2 = conv(8, k=3, s=2)\n  conv3 = conv(8, k=3, s=2)\n  conv4 = conv(8, k=5, p=0)\n}\n",
        "E0201",
        "`conv4`: the spatial size shrinks to zero",
        "  conv4 = conv(8, k=5, p=0)",
        "  " + "^" * 25 + " input is 1×1 here",
    ),
    "output_stride_below_the_stem": (
        HEADER + "  policy output_stride = 2\n  conv1 = conv(8, k=3, s=2)\n  maxpool(k=3, s=2)\n}\n",
        "E0121",
        "output_stride 2 is below the stride 4 reached here",
        "  maxpool(k=3, s=2)",
        "  " + "^" * 17 + " this op strides past the limit",
    ),
    "output_stride_not_a_power_of_two": (
        HEADER + "  policy output_stride = 12\n  conv1 = conv(8, k=3)\n}\n",
        "E0113",
        "`12` is not a output_stride policy",
        "  policy output_stride = 12",
        " " * 25 + "^^ unknown value",
    ),
    "empty_file": ("", "E0004", "the spec defines no network", None, None),
    "drop_misspelled": (
        HEADER + "  policy shortcut = dropped\n  conv1 = conv(16, k=3)\n}\n",
        "E0113",
        "`dropped` is not a shortcut policy",
        "  policy shortcut = dropped",
        " " * 20 + "^^^^^^^ unknown value",
    ),
    "numbered_stage_out_of_order": (
        HEADER + "  blocks.0 = basic(3) x 2\n  blocks.2 = basic(16) x 2 first(stride=2)\n}\n",
        "E0124",
        "`blocks.2`: the next stage of group `blocks` is `blocks.1`",
        "  blocks.2 = basic(16) x 2 first(stride=2)",
        "  ^^^^^^^^ expected `blocks.1`",
    ),
    "numbered_single_block": (
        HEADER + "  blocks.0 = basic(3)\n}\n",
        "E0124",
        "`blocks.0`: the last level names the module and must be a name",
        "  blocks.0 = basic(3)",
        "  ^^^^^^^^ a number",
    ),
    "named_member_after_numbered_stages": (
        HEADER + "  blocks.0 = basic(3) x 2\n  blocks.head = conv(16, k=3)\n}\n",
        "E0124",
        "`blocks.head`: a group's members are all numbered or all named",
        "  blocks.head = conv(16, k=3)",
        "  ^^^^^^^^^^^ a name among numbers",
    ),
    "has_skip_is_the_drop_flag": (
        HEADER + "  has_skip = conv(16, k=3)\n}\n",
        "E0106",
        "`has_skip` cannot name a layer: it is reserved in generated code",
        "  has_skip = conv(16, k=3)",
        "  ^^^^^^^^ choose another name",
    ),
    "se_width_given_twice": (
        HEADER + "  c = conv(16, k=3)\n  se = se(rd_channels=4, rd_ratio=0.25)\n}\n",
        "E0102",
        "`se` takes `rd_channels` or `rd_ratio`, not both",
        "  se = se(rd_channels=4, rd_ratio=0.25)",
        "  " + "^" * 37 + " two widths given",
    ),
    "se_act_not_a_choice": (
        HEADER + "  c = conv(16, k=3)\n  se = se(act=gelu)\n}\n",
        "E0107",
        "`se` argument `act` is relu or silu, got `gelu`",
        "  se = se(act=gelu)",
        " " * 14 + "^^^^ not one of its choices",
    ),
    "activation_takes_no_arguments": (
        HEADER + "  c = conv(16, k=3)\n  act = hard_swish(2)\n}\n",
        "E0102",
        "`hard_swish` takes at most 0 positional arguments, got 1",
        "  act = hard_swish(2)",
        " " * 19 + "^ extra argument",
    ),
    "inner_block_gets_other_norms": (
        'use "std/regnet.res"\nnetwork net {\n  input 3x32x32\n  b = twice(16)\n}\n'
        "block twice(w) {\n  conv1 = conv_norm(w)\n  conv2 = conv_norm(w)\n  add input\n}\n",
        "E0211",
        "the uses of block `conv_norm` hold different ops (conv, batchnorm, relu in `b.conv1`; conv, batchnorm in "
        "`b.conv2`)",
        "  conv2 = conv_norm(w)",
        "  " + "^" * 20 + " the policies place other ops in this use",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_spec_error_is_located_with_a_caret(cli, tmp_path, case):
    text, code, message, line, caret = CASES[case]
    spec = tmp_path / "net.res"
    spec.write_text(text)
    result = cli("check", str(spec))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"error[{code}]: {message}")
    if line is not None:
        lines = result.stderr.splitlines()
        assert f"--> {spec}:" in result.stderr
        index = next(i for i, text_line in enumerate(lines) if text_line.endswith(line) and "|" in text_line)
        carets = lines[index + 1].split("| ", 1)[1]
        assert carets.startswith(caret)
        assert not carets.startswith(caret + "^")  # the underline covers the span, not more


@pytest.mark.parametrize(
    "case, hint",
    [
        ("classes_with_equals", "= help: write `classes 200`; `=` is for `let`, `policy` and named layers"),
        ("input_with_equals", "= help: write `input 1x28x28`;"),
        ("preact_means_pre", "= help: did you mean `pre`? choose one of post, original,"),
        ("drop_misspelled", "= help: did you mean `drop`? choose one of A, B, C, drop, none"),
        ("numbered_single_block", "a stage (`x N`, a `seq` of blocks) may be numbered"),
        ("se_width_given_twice", "= help: `rd_channels` is the squeezed width itself: no ratio or divisor applies"),
        ("inner_block_gets_other_norms", "= help: the norm policy gives a residual branch's last conv no activation"),
    ],
)
def test_common_stumbles_get_the_fix_in_the_help(cli, tmp_path, case, hint):
    spec = tmp_path / "net.res"
    spec.write_text(CASES[case][0])
    assert hint in cli("check", str(spec)).stderr


def test_set_preact_suggests_pre(cli):
    from conftest import SPECS

    result = cli("check", str(SPECS / "resnet18.res"), "--set", "norm=preact")
    assert result.returncode == 1
    assert "error[E0301]: --set norm=preact: not a norm policy" in result.stderr
    assert "= help: did you mean `pre`?" in result.stderr


def test_errors_in_independent_statements_are_reported_together(cli, tmp_path):
    spec = tmp_path / "net.res"
    spec.write_text(HEADER + "  conv1 = cnov(16, k=3)\n  layer1 = basic(16, strid=2)\n  fc = linear(classes)\n}\n")
    result = cli("check", str(spec))
    assert result.returncode == 1
    codes = [line.split("]")[0] for line in result.stderr.splitlines() if line.startswith("error[")]
    assert codes == ["error[E0101", "error[E0102"]
    assert "did you mean `conv`?" in result.stderr
    assert "did you mean `stride`?" in result.stderr


def test_unknown_set_key_is_an_error_naming_the_settings(cli):
    from conftest import SPECS

    result = cli("check", str(SPECS / "resnet18.res"), "--set", "depth=3")
    assert result.returncode == 1
    assert "no such setting" in result.stderr and "classes" in result.stderr


def test_json_error_format(cli, tmp_path):
    import json

    spec = tmp_path / "net.res"
    spec.write_text(HEADER + "  layer1 = bottlenek(16) x 2\n}\n")
    result = cli("check", str(spec), "--error-format", "json")
    assert result.returncode == 1
    (error,) = json.loads(result.stdout)["errors"]
    assert error["code"] == "E0101"
    assert (error["location"]["line"], error["location"]["column"]) == (4, 12)
    assert error["help"] == "did you mean `bottleneck`?"


def test_non_utf8_byte_is_located_after_multibyte_characters(cli, tmp_path):
    spec = tmp_path / "net.res"
    spec.write_bytes("network n { # ééé ".encode() + b"\xff\n input 3x8x8 }\n")
    result = cli("check", str(spec))
    assert result.returncode == 1
    assert f"--> {spec}:1:19" in result.stderr
