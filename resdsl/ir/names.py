"""The IR's naming contract: which names a spec may give, and which module paths the IR may hold.

Module paths are the attribute paths of the generated modules and the keys of
their state_dicts, and spec names become variables of generated code; so every
part must be a plain Python identifier that no generated module already uses:
not a keyword, not private, not a member of torch.nn.Module (written out here,
as of PyTorch 2.13, so that nothing imports torch to check a name).
"""

from __future__ import annotations

import keyword
import re

from ..diagnostics import Span, error

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
# Methods of the containers a group is built as (nn.Sequential, nn.ModuleList, nn.ModuleDict): a member
# named so could not be added to its group.
_CONTAINER_ATTRS = {"append", "clear", "extend", "insert", "items", "keys", "pop", "update", "values"}
# Attributes, flags and variables the PyTorch backend generates for shortcuts.
_GENERATED_PATTERN = re.compile(r"(downsample|identity|has_skip)\d*")


def allowed(name: str, group_member: bool = False) -> bool:
    """Whether `name` may be a spec name or one part of a module path.

    A member of a group (`stages.1.downsample`) may take the names generated for shortcuts: a
    group holds modules and no residual adds, so none of its own is generated there.
    """
    return not (
        not name.isidentifier()
        or keyword.iskeyword(name)
        or name in RESERVED
        or name.startswith("_")
        or (not group_member and _GENERATED_PATTERN.fullmatch(name))
        or (group_member and name in _CONTAINER_ATTRS)
    )


def check_name(name: str, span: Span, what: str, group_member: bool = False) -> None:
    """Raise E0106 unless the spec's name `name` (written at `span`) is allowed."""
    if not allowed(name, group_member):
        if keyword.iskeyword(name):
            reason = "a Python keyword"
        elif group_member and name in _CONTAINER_ATTRS:
            reason = "a method of the module container that holds a group's members"
        else:
            reason = "reserved in generated code"
        raise error(
            "E0106",
            f"`{name}` cannot name a {what}: it is {reason}",
            span,
            "choose another name",
        )
