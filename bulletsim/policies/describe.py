"""What `bulletsim policies` prints: each policy's summary and every parameter with its
default and the text its parameter class documents it with (meaning, what 0 means, source).

A parameter's text is read from the docstrings of its class and the classes it inherits
from: a line `name: text` (or `a, b: text` for several), continued by more-indented lines.
"""

from __future__ import annotations

import dataclasses
import re

from bulletsim.policies.registry import POLICY_PARAMS, policy_names

_ENTRY = re.compile(r"^(\s*)([a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*): (.*)$")


def field_docs(cls: type) -> dict[str, str]:
    """{field name: its documented text} from the docstrings of `cls` and its bases."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        names: list[str] = []
        indent = -1
        for line in (klass.__doc__ or "").splitlines():
            m = _ENTRY.match(line)
            if m and (indent < 0 or len(m.group(1)) <= indent):
                indent = len(m.group(1))
                names = m.group(2).split(", ")
                for n in names:
                    out[n] = m.group(3).strip()
            elif names and line.strip() and len(line) - len(line.lstrip()) > indent:
                for n in names:
                    out[n] += " " + line.strip()
            else:
                names = []
    return out


def describe(name: str) -> list[str]:
    """The lines `bulletsim policies NAME` prints; ValueError for an unknown policy."""
    if name not in POLICY_PARAMS:
        raise ValueError(f"unknown policy {name!r}; valid: {', '.join(policy_names())}")
    cls = POLICY_PARAMS[name]
    first = (cls.__doc__ or "").strip().split("\n\n")[0]  # the whole first paragraph
    lines = [f"{name}: {' '.join(first.split())}"]
    docs = field_docs(cls)
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else "(computed)"
        lines.append(f"    {name}.{f.name} = {default!r}")
        if f.name in docs:
            lines.append(f"        {docs[f.name]}")
    return lines
