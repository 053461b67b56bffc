"""Neutralise control, bidi and invisible format characters in everything sopctl prints or renders.

Text in a change (title, description, comments, reasons, incident text, host and task names, audit
records, archive member names) is written by people or by the managed hosts. Printed raw, ``\\r``,
ANSI escapes (``ESC [ ...``) or Unicode bidi controls can hide or reorder it on a terminal or in a
report. :func:`neutralise` replaces each such character by a *visible* marker, so a reviewer sees
that something was there:

* C0 controls (U+0000-U+001F) as ``\\xNN`` (``\\t``, ``\\r``, ``\\n`` by name); a newline is kept
  only when the field is multi-line and the sink allows it (``multiline=True``);
* DEL and C1 controls (U+007F-U+009F), Unicode format characters (category Cf: the bidi
  embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069, the marks U+200E/U+200F/U+061C,
  zero-width spaces and joiners, soft hyphen, BOM, tag characters ...), line and paragraph
  separators (U+2028/U+2029), lone surrogates and a few invisible fillers as ``<U+XXXX>``.

One helper, used by every output path:

* :class:`SafeStream` wraps ``sys.stdout``/``sys.stderr`` for the whole command (installed by
  ``sopctl.cli.main``), so nothing printed reaches the terminal raw. sopctl's *own* terminal
  control (the live progress line) goes through :func:`control`, never through ``write``;
* :func:`one_line` for fields shown on one line (``status``, ``list``, verification results);
* :func:`jinja_finalize` for the report templates (Markdown: one line per field; HTML: the markers
  are HTML-escaped by autoescaping). JSON output is written with ``ensure_ascii`` (escaped, exact).
"""

from __future__ import annotations

import re

import unicodedata
from typing import Any, TextIO

#: invisible characters that ``str.isprintable()`` accepts (Hangul fillers, combining grapheme joiner)
EXTRA_INVISIBLE = frozenset("\u115f\u1160\u3164\uffa0\u034f")
_NAMED = {"\t": "\\t", "\r": "\\r", "\n": "\\n"}
_NEUTRALISED_CATEGORIES = ("Cc", "Cf", "Cs", "Zl", "Zp")


def _marker(ch: str) -> str:
    code = ord(ch)
    if code < 0x20:
        return _NAMED.get(ch) or f"\\x{code:02x}"
    return f"<U+{code:04X}>"


def needs_neutralising(ch: str) -> bool:
    if ch.isprintable():
        return ch in EXTRA_INVISIBLE
    return unicodedata.category(ch) in _NEUTRALISED_CATEGORIES


def neutralise(text: Any, multiline: bool = False) -> str:
    """``text`` (converted with ``str``) with every control/bidi/format character made visible."""
    if not isinstance(text, str):
        text = "" if text is None else str(text)
    if text.isprintable() and not EXTRA_INVISIBLE.intersection(text):
        return text  # fast path: nothing to do
    out = []
    for ch in text:
        if ch == "\n" and multiline:
            out.append(ch)
        elif needs_neutralising(ch):
            out.append(_marker(ch))
        else:
            out.append(ch)
    return "".join(out)


def one_line(text: Any) -> str:
    """For a field shown on one line: newlines are shown as ``\\n`` too."""
    return neutralise(text, multiline=False)


def multi_line(text: Any) -> str:
    """For a multi-line field where the sink shows line breaks: newlines are kept."""
    return neutralise(text, multiline=True)


def is_clean(text: str, multiline: bool = False) -> bool:
    return neutralise(text, multiline) == text


# ------------------------------------------------------------------------------ terminal streams
class SafeStream:
    """A text stream whose ``write`` neutralises everything (newlines kept) before the real stream.

    Attribute access (``flush``, ``isatty``, ``fileno``, ``encoding`` ...) goes to the wrapped
    stream. Characters the terminal's encoding cannot represent are written backslash-escaped
    instead of raising ``UnicodeEncodeError``.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    @property
    def wrapped(self) -> TextIO:
        return self._stream

    def write(self, text: str) -> int:
        safe = neutralise(text, multiline=True)
        try:
            self._stream.write(safe)
        except UnicodeEncodeError:
            enc = getattr(self._stream, "encoding", None) or "ascii"
            self._stream.write(safe.encode(enc, "backslashreplace").decode(enc))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def control(self, sequence: str) -> None:
        """Write sopctl's own terminal control sequence (never text from a change) unchanged."""
        self._stream.write(sequence)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def control(stream: TextIO, sequence: str) -> None:
    """Write a terminal control sequence of sopctl itself to ``stream`` (past a :class:`SafeStream`)."""
    writer = getattr(stream, "control", None)
    if callable(writer):
        writer(sequence)
    else:
        stream.write(sequence)


def safe_streams(stdout: TextIO, stderr: TextIO) -> tuple[SafeStream, SafeStream]:
    def wrap(stream: TextIO) -> SafeStream:
        return stream if isinstance(stream, SafeStream) else SafeStream(stream)

    return wrap(stdout), wrap(stderr)


# ------------------------------------------------------------------------------ report templates
#: characters that would make change text act as Markdown structure (a table cell's end, raw HTML,
#: a link) replaced by character references: shown as themselves, idempotent when finalised twice
MARKDOWN_ACTIVE = str.maketrans({"|": "&#124;", "<": "&lt;", ">": "&gt;", "[": "&#91;", "]": "&#93;"})


class FencedText(str):
    """Text for the inside of a Markdown fenced code block, between fences longer than any run of
    ``~`` in it (``markdown_fence``): nothing there is active, so the Markdown finalize keeps its
    lines and characters (control and invisible characters are still marked)."""


def markdown_fence(text: str) -> str:
    """A ``~`` fence no line of ``text`` can close: longer than its longest run of ``~``."""
    longest = max((len(run) for run in re.findall(r"~+", text or "")), default=0)
    return "~" * max(4, longest + 1)


def jinja_finalize(multiline: bool, markdown: bool = False):
    """A Jinja ``finalize`` applied to every ``{{ expression }}`` of a report template.

    Undefined values are passed on (StrictUndefined still raises). ``Markup`` (a macro's output,
    already made of finalised values) is neutralised too, with the markers HTML-escaped. With
    ``markdown``, ``| < > [ ]`` become character references, so no text of a change can end a
    table cell, open raw HTML or make a link in the Markdown report.
    """
    plain = _jinja_finalize(multiline)
    if not markdown:
        return plain

    def finalize(value: Any) -> Any:
        if isinstance(value, FencedText):
            return neutralise(str(value), multiline=True)
        out = plain(value)
        return out.translate(MARKDOWN_ACTIVE) if isinstance(out, str) else out

    return finalize


def _jinja_finalize(multiline: bool):
    import jinja2
    from markupsafe import Markup, escape

    def finalize(value: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            return value
        if isinstance(value, Markup):
            text = str(value)
            if text.isprintable() and not EXTRA_INVISIBLE.intersection(text):
                return value
            # the markup is a macro's output, already escaped; only the markers are added, escaped
            return Markup("".join(  # noqa: S704
                ch if (ch == "\n" and multiline) or not needs_neutralising(ch) else str(escape(_marker(ch)))
                for ch in text))
        return neutralise(value if isinstance(value, str) else str(value), multiline=multiline)

    return finalize
