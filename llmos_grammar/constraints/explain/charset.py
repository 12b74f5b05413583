"""The bytes a matcher allows next, written as readable character classes."""

from __future__ import annotations

from collections.abc import Callable, Iterable

ASCII_END = 0x80
UTF8_LEADS = frozenset(range(0xC2, 0xF5))  # the bytes that start a character of 2-4 bytes
UTF8_TAILS = frozenset(range(0x80, 0xC0))  # the bytes that continue one


def describe(allowed: Iterable[int]) -> tuple[str, ...]:
    """`allowed` (byte values) as classes: `'a'-'z'`, `'_'`, `'\\n'`, `any non-ASCII
    character`, `\\xe2-\\xef`; runs of three or more bytes become ranges."""
    wanted = set(allowed)
    out = _ranges(sorted(b for b in wanted if b < ASCII_END), _char)
    rest = {b for b in wanted if b >= ASCII_END}
    if rest >= UTF8_LEADS:
        out.append("any non-ASCII character")
        rest -= UTF8_LEADS
    if rest >= UTF8_TAILS:
        out.append("the next byte of a character (\\x80-\\xbf)")
        rest -= UTF8_TAILS
    return tuple(out + _ranges(sorted(rest), _hex))


def char(byte: int) -> str:
    """One byte as it is shown: a quoted ASCII character or `\\xNN`."""
    return _char(byte) if byte < ASCII_END else _hex(byte)


def _char(byte: int) -> str:
    return repr(chr(byte))  # '\n', "'", '\x00': printable and unambiguous


def _hex(byte: int) -> str:
    return f"\\x{byte:02x}"


def _ranges(values: list[int], name: Callable[[int], str]) -> list[str]:
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][1] == value - 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    out: list[str] = []
    for low, high in runs:
        if high - low >= 2:
            out.append(f"{name(low)}-{name(high)}")
        else:
            out += [name(b) for b in range(low, high + 1)]
    return out
