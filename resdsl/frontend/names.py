"""Which names a spec may give: every name that reaches generated code must be a free Python identifier."""

from __future__ import annotations

import keyword
import re

from ..diagnostics import error
from . import ast

# Names that would break or shadow something in the generated PyTorch code:
# every public attribute of torch.nn.Module (2.13), written out so that
# lowering never imports torch, and the names the generated code uses itself.
_MODULE_ATTRS = {
    "T_destination",
    "add_module",
    "apply",
    "bfloat16",
    "buffers",
    "call_super_init",
    "children",
    "compile",
    "cpu",
    "cuda",
    "double",
    "dump_patches",
    "eval",
    "extra_repr",
    "float",
    "forward",
    "get_buffer",
    "get_extra_state",
    "get_parameter",
    "get_submodule",
    "half",
    "ipu",
    "load_state_dict",
    "modules",
    "mtia",
    "named_buffers",
    "named_children",
    "named_modules",
    "named_parameters",
    "parameters",
    "register_backward_hook",
    "register_buffer",
    "register_forward_hook",
    "register_forward_pre_hook",
    "register_full_backward_hook",
    "register_full_backward_pre_hook",
    "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook",
    "register_module",
    "register_parameter",
    "register_state_dict_post_hook",
    "register_state_dict_pre_hook",
    "requires_grad_",
    "set_extra_state",
    "set_submodule",
    "share_memory",
    "state_dict",
    "to",
    "to_empty",
    "train",
    "training",
    "type",
    "xpu",
    "zero_grad",
    "expansion",
}
_GENERATED_NAMES = {"self", "x", "out", "identity", "torch", "nn", "F", "super", "inplanes", "int", "bool", "float"}
RESERVED = _MODULE_ATTRS | _GENERATED_NAMES
# Attributes, flags and variables the PyTorch backend generates for shortcuts.
_GENERATED_PATTERN = re.compile(r"(downsample|identity)\d*")


def check_name(ident: ast.Ident, what: str) -> None:
    """A name that reaches generated code must be a plain, free Python identifier."""
    name = ident.text
    if (
        not name.isidentifier()
        or keyword.iskeyword(name)
        or name in RESERVED
        or name.startswith("_")
        or _GENERATED_PATTERN.fullmatch(name)
    ):
        reason = "a Python keyword" if keyword.iskeyword(name) else "reserved in generated code"
        raise error(
            "E0106",
            f"`{name}` cannot name a {what}: it is {reason}",
            ident.span,
            "choose another name",
        )
