"""The look every picture shares: font, numbers, label text, boxes and operation circles.

The Value graphs (:mod:`autodiff.render`), the explorer and nn's network view all
draw with these, so that a number, a label or an operation looks the same in each.

Label text is user text and is shown *literally*: control characters become
visible escapes (``\\n``, ``\\x07``), a label longer than :data:`LABEL_CHARS` is
shortened with a visible ellipsis (the label goes into a tooltip, itself cut at
:data:`TOOLTIP_CHARS` for Graphviz 2.43, saying where the whole label is), and
:func:`dot_text` escapes what Graphviz would otherwise interpret (backslash
escapes and HTML entities such as ``&amp;``).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Sequence
from importlib import resources
from typing import Any

import graphviz

__all__ = [
    "FONT",
    "FONTSIZE",
    "LABEL_CHARS",
    "TOOLTIP_CHARS",
    "box",
    "dot_text",
    "html_page",
    "number",
    "op_node",
    "script_json",
    "shortened",
    "tooltip_text",
    "subscript",
    "superscript",
    "visible",
]

FONT = "Courier"  # known to every renderer's metrics; browsers use a monospace font alike
FONTSIZE = 11.0
#: Labels longer than this many characters are shortened, with "…", in the pictures.
LABEL_CHARS = 32
#: Tooltips longer than this are cut, saying so. Graphviz 2.43 (Debian's) refuses a
#: quoted string over 16,384 bytes in its input; this many characters, each escaped to at
#: most 5 (``&amp;``) and 4 bytes of UTF-8, stays under that with room.
TOOLTIP_CHARS = 600

_CHAR = 0.6 * FONTSIZE  # Courier's advance is 0.6 em
_LINE = 1.25 * FONTSIZE


def number(x: float) -> str:
    """A number to 4 decimal places; scientific notation where that would say nothing.

    Every float is shown as what it is: ``-0.0000`` for −0.0, ``nan``, ``inf``, ``-inf``.
    """
    if x == 0.0:
        return "-0.0000" if math.copysign(1.0, x) < 0.0 else "0.0000"
    if math.isfinite(x) and 1e-4 <= abs(x) < 1e6:
        return f"{x:.4f}"
    return f"{x:.4e}" if math.isfinite(x) else str(x)


def visible(s: str) -> str:
    """User text as it should appear: control characters shown as escapes (\\n, \\x07)."""
    out = []
    for ch in s:
        code = ord(ch)
        if code < 32 or code == 127 or ch in "\u2028\u2029":
            shown = {"\n": "n", "\t": "t", "\r": "r"}.get(ch)
            if shown is None:
                shown = f"x{code:02x}" if code < 256 else f"u{code:04x}"
            out.append("\\" + shown)  # a visible backslash, then the letter
        else:
            out.append(ch)
    return "".join(out)


_SUB = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")
_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def subscript(n: int) -> str:
    """`n` in subscript digits (x₁₂), as the pictures index names."""
    return str(n).translate(_SUB)


def superscript(n: int) -> str:
    """`n` in superscript digits (h², a¹), as the pictures number layers."""
    return str(n).translate(_SUP)


def tooltip_text(s: str) -> str:
    """`s` (already :func:`visible`) for a tooltip: whole up to :data:`TOOLTIP_CHARS`,
    else cut there, with how long it is and where the whole of it can be read."""
    if len(s) <= TOOLTIP_CHARS:
        return s
    return f"{s[:TOOLTIP_CHARS]}… ({len(s):,} characters; the whole label is the Value's .label)"


def shortened(s: str, limit: int = LABEL_CHARS) -> str:
    """`s` (already :func:`visible`) cut to `limit` characters, the last one "…"."""
    return s if len(s) <= limit else s[: limit - 1] + "…"


def dot_text(s: str) -> str:
    """Text for a Graphviz label or tooltip that Graphviz shows literally.

    A backslash is doubled (Graphviz reads ``\\n``, ``\\N`` … as escapes), ``&``
    becomes ``&amp;`` (Graphviz passes entities such as ``&lt;`` through to SVG, where
    they would be decoded), and the text is marked as never an HTML-like label (the
    graphviz package would pass ``<…>`` through unquoted); it quotes the rest.
    """
    return graphviz.nohtml(s.replace("\\", "\\\\").replace("&", "&amp;"))


def box(lines: Sequence[str], width_lines: Sequence[str] | None = None) -> dict[str, str]:
    """Attributes of a fixed-size box holding `lines` of Courier text, shown literally.

    The box is as wide as the longest of `width_lines` (default: `lines`), so that two
    pictures can give one node the same box whatever each writes in it.
    """
    chars = max((len(line) for line in (width_lines or lines)), default=1)
    return {
        "label": dot_text("\n".join(lines)),
        "width": f"{(chars * _CHAR + 14) / 72:.3f}",
        "height": f"{(len(lines) * _LINE + 8) / 72:.3f}",
    }


def op_node(symbol: str) -> dict[str, Any]:
    """Attributes of the small circle an operation is drawn as, sized to its symbol."""
    size = f"{max(0.3, (len(symbol) * _CHAR + 8) / 72):.3f}"
    return {"label": dot_text(symbol), "shape": "circle", "width": size, "height": size}


#: What JSON inside a <script> element must not hold literally: "</" could end the
#: element, "<!--" change how it is parsed; U+2028/9 end a line in older parsers.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(data: object) -> str:
    """`data` as JSON safe inside an HTML ``<script type="application/json">`` element.

    Strict JSON (no NaN or Infinity: give non-finite numbers as strings), with the
    characters that could end or change the element escaped; ``JSON.parse`` reads it
    back unchanged, whatever strings it holds.
    """
    return json.dumps(data, ensure_ascii=False, allow_nan=False).translate(_SCRIPT_SAFE)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{TITLE}}</title>
<style>
{{CSS}}
</style>
</head>
<body>
{{BODY}}
<script type="application/json" id="data">{{DATA}}</script>
<script>
{{JS}}
</script>
</body>
</html>
"""


def html_page(package: str, name: str, *, title: str, svg: str, data: object) -> str:
    """A self-contained page: the one skeleton (head, data, script) around the body
    ``NAME.html`` of the folder ``assets`` of `package` (package data), with ``NAME.css``
    and ``NAME.js``: ``{{TITLE}}``, ``{{CSS}}``, ``{{SVG}}``, ``{{DATA}}`` and ``{{JS}}``
    filled in one pass (so that no text can bring in a placeholder of its own), the
    title escaped, the data as :func:`script_json`."""
    folder = resources.files(package) / "assets"

    def asset(suffix: str) -> str:
        return (folder / f"{name}.{suffix}").read_text(encoding="utf-8")

    fills = {
        "TITLE": html.escape(visible(title)),
        "CSS": asset("css"),
        "SVG": svg[svg.index("<svg") :] if "<svg" in svg else svg,
        "DATA": script_json(data),
        "JS": asset("js"),
    }
    page = _PAGE.replace("{{BODY}}", asset("html").strip("\n"))
    return re.sub(r"\{\{(\w+)\}\}", lambda m: fills[m.group(1)], page)
