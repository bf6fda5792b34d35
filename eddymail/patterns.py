"""Regular expressions compiled when first used, not when their module is imported.

A mail server starts ``eddymail ingest`` for every message and cron starts ``fetch`` every
minute (issue 14). Compiling every module's patterns at import was about a tenth of such a
run, and most of them (HTML, attachments' names, authentication results, the terminal's
escapes) are never used by it. ``LazyPattern`` is written where ``re.compile`` was and is
used the same way: ``_WORD = LazyPattern(r"\\w+")`` ... ``_WORD.findall(text)``. The pattern
is compiled once, on the first call, by ``re.compile`` itself.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any, AnyStr, Generic, overload

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class LazyPattern(Generic[AnyStr]):
    """``re.compile(source, flags)``, compiled on first use; the methods of ``re.Pattern``
    (typed as typeshed types them).

    Not a ``re.Pattern`` itself: give ``compiled`` to code that needs one (``re.sub(p, ...)``
    or ``isinstance``).
    """

    def __init__(self, source: AnyStr, flags: int = 0) -> None:
        self.source: AnyStr = source
        self.flags = flags

    def __repr__(self) -> str:
        return f"LazyPattern({self.source!r}, {self.flags!r})"

    @cached_property
    def compiled(self) -> re.Pattern[AnyStr]:
        """The compiled pattern (compiled by the first call, then kept)."""
        return re.compile(self.source, self.flags)

    @overload
    def match(self: LazyPattern[str], string: str, pos: int = 0,
            endpos: int = sys.maxsize) -> re.Match[str] | None: ...
    @overload
    def match(self: LazyPattern[bytes], string: ReadableBuffer, pos: int = 0,
            endpos: int = sys.maxsize) -> re.Match[bytes] | None: ...
    def match(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        """``re.Pattern.match``."""
        return self.compiled.match(string, pos, endpos)

    @overload
    def fullmatch(self: LazyPattern[str], string: str, pos: int = 0,
            endpos: int = sys.maxsize) -> re.Match[str] | None: ...
    @overload
    def fullmatch(self: LazyPattern[bytes], string: ReadableBuffer, pos: int = 0,
            endpos: int = sys.maxsize) -> re.Match[bytes] | None: ...
    def fullmatch(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        """``re.Pattern.fullmatch``."""
        return self.compiled.fullmatch(string, pos, endpos)

    @overload
    def search(self: LazyPattern[str], string: str, pos: int = 0,
            endpos: int = sys.maxsize) -> re.Match[str] | None: ...
    @overload
    def search(self: LazyPattern[bytes], string: ReadableBuffer, pos: int = 0,
            endpos: int = sys.maxsize) -> re.Match[bytes] | None: ...
    def search(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        """``re.Pattern.search``."""
        return self.compiled.search(string, pos, endpos)

    @overload
    def findall(self: LazyPattern[str], string: str, pos: int = 0,
            endpos: int = sys.maxsize) -> list[Any]: ...
    @overload
    def findall(self: LazyPattern[bytes], string: ReadableBuffer, pos: int = 0,
            endpos: int = sys.maxsize) -> list[Any]: ...
    def findall(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        """``re.Pattern.findall``."""
        return self.compiled.findall(string, pos, endpos)

    @overload
    def finditer(self: LazyPattern[str], string: str, pos: int = 0,
            endpos: int = sys.maxsize) -> Iterator[re.Match[str]]: ...
    @overload
    def finditer(self: LazyPattern[bytes], string: ReadableBuffer, pos: int = 0,
            endpos: int = sys.maxsize) -> Iterator[re.Match[bytes]]: ...
    def finditer(self, string: Any, pos: int = 0, endpos: int = sys.maxsize) -> Any:
        """``re.Pattern.finditer``."""
        return self.compiled.finditer(string, pos, endpos)

    @overload
    def split(self: LazyPattern[str], string: str, maxsplit: int = 0) -> list[str | Any]: ...
    @overload
    def split(self: LazyPattern[bytes], string: ReadableBuffer,
            maxsplit: int = 0) -> list[bytes | Any]: ...
    def split(self, string: Any, maxsplit: int = 0) -> Any:
        """``re.Pattern.split``."""
        return self.compiled.split(string, maxsplit)

    @overload
    def sub(self: LazyPattern[str], repl: str | Callable[[re.Match[str]], str], string: str,
            count: int = 0) -> str: ...
    @overload
    def sub(self: LazyPattern[bytes],
            repl: ReadableBuffer | Callable[[re.Match[bytes]], ReadableBuffer],
            string: ReadableBuffer, count: int = 0) -> bytes: ...
    def sub(self, repl: Any, string: Any, count: int = 0) -> Any:
        """``re.Pattern.sub``."""
        return self.compiled.sub(repl, string, count)

    @overload
    def subn(self: LazyPattern[str], repl: str | Callable[[re.Match[str]], str], string: str,
            count: int = 0) -> tuple[str, int]: ...
    @overload
    def subn(self: LazyPattern[bytes],
            repl: ReadableBuffer | Callable[[re.Match[bytes]], ReadableBuffer],
            string: ReadableBuffer, count: int = 0) -> tuple[bytes, int]: ...
    def subn(self, repl: Any, string: Any, count: int = 0) -> Any:
        """``re.Pattern.subn``."""
        return self.compiled.subn(repl, string, count)
