"""Reading the legacy result files (format: docs/semantics.md) into flat, validated entries.

A legacy file holds either ``{implementation: [entry, ...], ...}`` or one implementation's list at
the top level. An entry has ``implementation`` (or takes its key's), ``seq_len``, optional
``batch_size``/``num_heads``/``head_dim``/``dtype``/``causal``/``device``, ``samples`` and
``mean_time_ms`` (ms), ``peak_memory_mb`` (MiB) and ``error``: a message (or ``true``) marks a failed
measurement; ``null``, ``false`` or ``""`` mean none. Times must be finite and > 0, memory finite
and >= 0: anything else is refused with the entry named, never migrated as a number.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

# benchmark-results-2025-06-27-0945.json, benchmark_long_sequences_2025-06-26.json
_NAME_TIME = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[-_T](\d{2})(\d{2}))?(?!\d)")


@dataclass(frozen=True)
class LegacyEntry:
    """One measured (or failed) configuration; times in ms, memory in MiB."""

    implementation: str
    seq_len: int
    shape: str  # batch/heads/head_dim plus dtype/causal/device when the entry names them
    samples_ms: tuple[float, ...] = ()
    mean_time_ms: float | None = None
    peak_memory_mb: float | None = None
    error: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)


def timestamp_from_name(filename: str) -> tuple[datetime | None, str]:
    """The run time encoded in a legacy file name (UTC), and how exact it is.

    A name with only a date maps to the end of that day (23:59:59 UTC): the run happened some time
    that day, so every commit of that day may have been measured.
    """
    match = _NAME_TIME.search(filename)
    if not match:
        return None, "no date in the file name"
    year, month, day, hour, minute = match.groups()
    try:
        day_start = datetime(int(year), int(month), int(day), tzinfo=timezone.utc)
        if hour is None:
            return day_start + timedelta(days=1, seconds=-1), "date in the file name (end of day, UTC)"
        return day_start.replace(hour=int(hour), minute=int(minute)), "time in the file name (UTC)"
    except ValueError as exc:
        return None, f"invalid date in the file name ({exc})"


def _shape_label(raw: dict) -> str:
    parts = [f"b{raw.get('batch_size', '?')}", f"h{raw.get('num_heads', '?')}", f"d{raw.get('head_dim', '?')}"]
    if raw.get("dtype") is not None:
        parts.append(str(raw["dtype"]))
    if raw.get("causal") is not None:
        parts.append("causal" if raw["causal"] else "noncausal")
    if raw.get("device") is not None:
        parts.append(str(raw["device"]))
    return " ".join(parts)


def _number(value, what: str, allow_zero: bool = False) -> float | None:
    """A finite number > 0 (>= 0 with ``allow_zero``), or None for a missing value."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{what} is {value!r}, not a number")
    value = float(value)
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        expected = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{what} is {value!r}, not {expected}")
    return value


def _error_text(error, where: str) -> str | None:
    """The failure message of an entry: None when it did not fail."""
    if error is None or error is False or error == "":
        return None
    if error is True:
        return "failed (the legacy file gives no error text)"
    if isinstance(error, (int, float)) and not isinstance(error, bool):
        raise ValueError(f"{where} has error {error!r}: expected a message, true, false or null")
    return str(error)


def _entry(raw, default_impl: str | None, where: str) -> LegacyEntry:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is a {type(raw).__name__}, not an object")
    impl = raw.get("implementation", default_impl)
    if not isinstance(impl, str) or not impl:
        raise ValueError(f"{where} has no implementation name")
    seq_len = raw.get("seq_len")
    if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len <= 0:
        raise ValueError(f"{where} has seq_len {seq_len!r}, not a positive integer")
    samples = raw.get("samples") or []
    if not isinstance(samples, list):
        raise ValueError(f"{where} has samples that are not a list")
    error = _error_text(raw.get("error"), where)
    label = f"{where} ({impl} seq_len={seq_len})"
    return LegacyEntry(
        implementation=impl,
        seq_len=seq_len,
        shape=_shape_label(raw),
        samples_ms=tuple(_number(s, f"{label} sample {i}") for i, s in enumerate(samples)),
        mean_time_ms=_number(raw.get("mean_time_ms"), f"{label} mean_time_ms"),
        peak_memory_mb=_number(raw.get("peak_memory_mb"), f"{label} peak_memory_mb", allow_zero=True),
        error=error,
        extra={k: raw[k] for k in ("dtype", "causal", "device") if k in raw},
    )


def parse_legacy(data) -> list[LegacyEntry]:
    """Entries of one legacy file's parsed JSON; ValueError naming the first thing that is wrong."""
    if isinstance(data, list):
        return [_entry(raw, None, f"entry {i}") for i, raw in enumerate(data)]
    if not isinstance(data, dict) or not data:
        raise ValueError("top level is neither a non-empty object of implementations nor a list of entries")
    entries = []
    for impl, rows in data.items():
        if not isinstance(rows, list):
            raise ValueError(f"'{impl}' holds a {type(rows).__name__}, not a list of entries")
        entries.extend(_entry(raw, impl, f"'{impl}' entry {i}") for i, raw in enumerate(rows))
    return entries


def load_legacy(path: str) -> list[LegacyEntry]:
    """Read and validate one legacy file; ValueError if it is not valid legacy JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at line {exc.lineno})") from None
    entries = parse_legacy(data)
    if not entries:
        raise ValueError("holds no entries")
    return entries
