"""A GBNF grammar for the answer, for backends that take one (llama.cpp in process, llama-server,
llama-cpp-python's server).

A JSON schema turned into a grammar fixes the shape but not the numbers (the converters ignore
minimum/maximum), so a model can write a confidence of 975 or a coordinate of sixteen digits. This
grammar also bounds the numbers: confidence is 0..1 with at most three decimals, x and y lie
exactly within the profile's coordinate space for this image, whitespace is compact (a model
cannot pad with blanks until max_tokens) and a reason is at most MAX_REASON characters.
Validation still checks every value: the other backends cannot enforce ranges, and a box may
still be inverted or degenerate.
"""

from __future__ import annotations

import json

from inspector.messages import Severity
from inspector.reasoner.answer import MAX_FINDINGS, MAX_REASON
from inspector.reasoner.profiles import Profile


def _lit(s: str) -> str:
    return json.dumps(json.dumps(s))  # a GBNF string literal of the JSON string "s"


def _alt(values) -> str:
    return " | ".join(_lit(v) for v in values)


def int_range(top: int) -> str:
    """GBNF alternatives for exactly the integers 0..top (no leading zeros)."""
    digits = str(top)
    n = len(digits)
    alts = ['"0"']
    if n > 1:
        alts.append(f"[1-9] [0-9]{{0,{n - 2}}}" if n > 2 else "[1-9]")
    for i, d in enumerate(digits):  # n-digit numbers below `top`: same prefix, then a smaller digit
        lo = 1 if i == 0 else 0
        if int(d) > lo:
            head = f'"{digits[:i]}" ' if i else ""
            tail = f" [0-9]{{{n - i - 1}}}" if n - i - 1 else ""
            alts.append(f"{head}[{lo}-{int(d) - 1}]{tail}")
    if top > 0:
        alts.append(f'"{digits}"')
    return " | ".join(dict.fromkeys(alts))


def _coord_rules(profile: Profile, w: int, h: int) -> list[str]:
    if profile.coords == "rel1":
        frac = '"0" ("." [0-9]{1,4})? | "1" (".0")?'
        return [f"xc ::= {frac}", f"yc ::= {frac}"]
    mw, mh = profile.model_size(w, h)
    return [f"xc ::= {int_range(int(mw))}", f"yc ::= {int_range(int(mh))}"]


def answer_gbnf(taxonomy: list[str], profile: Profile, w: int, h: int, zoom: bool = False) -> str:
    """The grammar for an answer about a w x h image (pixel coordinates are bounded by its size).
    `zoom`: the answer may instead be a request to see a region closer, {"zoom": [x1, y1, x2, y2]}
    (model-driven zoom for backends without tool calls)."""
    def key(name: str) -> str:
        return f'"\\"{name}\\"" ws ":" ws'

    finding = (f'"{{" ws {key("type")} type ws "," ws {key("severity")} severity ws "," ws '
               f'{key("confidence")} conf ws "," ws {key("box")} box ws "," ws '
               f'{key("reason")} reason ws "}}"')
    more = MAX_FINDINGS - 1
    answer = f'"{{" ws {key("verdict")} verdict ws "," ws {key("findings")} findings ws "}}" ws'
    root = ["root ::= answer | zoomreq", f"answer ::= {answer}",
            f'zoomreq ::= "{{" ws {key("zoom")} box ws "}}" ws'] if zoom else [f"root ::= {answer}"]
    return "\n".join([
        *root,
        f'verdict ::= {_alt(["defect", "ok", "uncertain"])}',
        f'findings ::= "[" ws "]" | "[" ws finding (ws "," ws finding){{0,{more}}} ws "]"',
        f"finding ::= {finding}",
        f"type ::= {_alt([*taxonomy, 'other'])}",
        f"severity ::= {_alt([s.value for s in Severity])}",
        'conf ::= "0" ("." [0-9]{1,3})? | "1" (".0")?',
        'box ::= "[" ws xc ws "," ws yc ws "," ws xc ws "," ws yc ws "]"',
        *_coord_rules(profile, w, h),
        f'reason ::= "\\"" char{{0,{MAX_REASON}}} "\\""',
        'char ::= [^"\\\\\\x00-\\x1f] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
        "ws ::= \" \"?",  # compact JSON: a random or rambling model cannot pad with blanks
    ]) + "\n"
