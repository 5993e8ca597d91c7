"""Timecodes for the examiner: `MM:SS.mmm` (or `H:MM:SS.mmm`) from the clip start."""

from __future__ import annotations

import re


def format_timecode(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    ms_total = int(round(abs(seconds) * 1000))
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    if h:
        return f"{sign}{h}:{m:02d}:{s:02d}.{ms:03d}"
    return f"{sign}{m:02d}:{s:02d}.{ms:03d}"


_TC = re.compile(r"^\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*$")


def parse_position(text: str) -> tuple[str, float] | None:
    """'123' -> ('frame', 123); '1:02.5', '62.5s', '0:01:02.5' -> ('time', 62.5); else None."""
    t = text.strip().lower()
    if not t:
        return None
    if re.fullmatch(r"\d+", t):
        return ("frame", float(int(t)))
    if t.endswith("s") and re.fullmatch(r"\d+(\.\d*)?s", t):
        return ("time", float(t[:-1]))
    if ":" in t:
        m = _TC.match(t)
        if not m:
            return None
        a, b, c = m.groups()
        parts = [float(x) for x in (a, b) if x is not None]
        secs = float(c)
        if len(parts) == 2:
            return ("time", parts[0] * 3600 + parts[1] * 60 + secs)
        return ("time", parts[0] * 60 + secs)
    return None
