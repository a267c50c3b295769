"""Keep secrets out of everything perwatt writes: manifests, rows, logs and reports.

A URL keeps its scheme, host, port and path; its userinfo becomes `***@`, every query value
becomes `***` whatever the parameter is called (a key hides as well behind `?q=` as behind
`?api_key=`), a bare query word (`?sk-123`) becomes `***`, and so does a fragment:
`http://user:KEY@h:8/v1?api_key=K&x=y` → `http://***@h:8/v1?api_key=***&x=***`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_SECRET_WORDS = re.compile(r"(key|token|secret|password|passwd|auth|credential)", re.IGNORECASE)
# A URL inside free text: scheme://, then everything up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")
REDACTED = "***"


def redact_url(url: str) -> str:
    """The URL with userinfo, every query value and any fragment masked (see the module doc).

    Works on the text, never failing: an unparseable port or host is kept as written.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    rest, hash_sign, fragment = rest.partition("#")
    rest, question, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = REDACTED + "@" + authority.rpartition("@")[2]
    out = (scheme + sep if sep else "") + authority + slash + path
    if question:
        out += "?" + _redact_query(query)
    if hash_sign:
        out += "#" + (REDACTED if fragment else "")
    return out


def _redact_query(query: str) -> str:
    # Both separators that form decoders accept; the names are kept, never the values.
    fields = re.split(r"([&;])", query)
    for i in range(0, len(fields), 2):
        name, eq, _value = fields[i].partition("=")
        if eq:
            fields[i] = name + "=" + REDACTED
        elif name:
            fields[i] = REDACTED
    return "".join(fields)


def redact_text(text: str) -> str:
    """Free text (an error message, a log line) with every URL in it redacted."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group()), text)


def redact_argv(argv: Sequence[str]) -> list[str]:
    """The command line with secret-looking option values masked and every URL redacted.

    A URL is redacted wherever it appears in an argument: on its own, as `--flag=URL`, or inside
    a longer value (`--prometheus 'URL;METRIC;UNIT'`).
    """
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if arg.startswith("--") and _SECRET_WORDS.search(arg.split("=", 1)[0]):
            if "=" in arg:
                out.append(arg.split("=", 1)[0] + "=" + REDACTED)
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact_text(arg))
    return out
