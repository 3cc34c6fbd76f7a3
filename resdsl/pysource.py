"""The one way text and values from outside (file names, names, strings, numbers) enter generated Python.

Generated source is imported, so whatever a spec, its file name or a `--set`
value holds must arrive there as inert data: a literal for values, escaped
text inside a docstring for names. Names that become identifiers are checked
where they are defined (frontend/names.py); everything else goes through here.
"""

from __future__ import annotations

import math


def literal(value: object) -> str:
    """Python source for None, a boolean, integer, float or string, read back by Python as the same value."""
    if value is None:  # an argument left to be derived (eca's kernel from the channel count)
        return "None"
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):  # `nan` or `inf` would be names, not numbers
            raise ValueError(f"no Python literal for the float {value}")
        return repr(value)
    if isinstance(value, str):
        return repr(value)  # quotes, backslashes and unprintable characters escaped
    raise TypeError(f"no Python literal for {type(value).__name__}")


def docstring_text(text: str) -> str:
    """`text` escaped for a triple-quoted docstring: it cannot end the string, and Python reads back `text`."""
    out = []
    for char in text:
        if char in '\\"':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:  # control characters, line breaks, bidirectional overrides, lone surrogates
            out.append(repr(char)[1:-1])
    return "".join(out)
