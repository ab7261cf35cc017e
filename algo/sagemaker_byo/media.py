"""Media types: `Content-Type` with its parameters, and `Accept` negotiation with q-values."""

from __future__ import annotations

from functools import lru_cache

from .errors import NotAcceptable


@lru_cache(maxsize=256)
def parse(header: str) -> tuple[str, dict[str, str]]:
    """'Text/CSV; charset=UTF-8' -> ('text/csv', {'charset': 'UTF-8'})."""
    media_type, _, rest = header.partition(";")
    params = {}
    for part in rest.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            params[name.strip().lower()] = value.strip().strip('"')
    return media_type.strip().lower(), params


def _wildcard(media_range: str) -> bool:
    return media_range.endswith("/*") or media_range == "*"


@lru_cache(maxsize=256)
def _accept_ranges(header: str) -> tuple[tuple[str, float], ...]:
    """(media range, q) by preference: higher q first, then specific before wildcard, then order."""
    ranges = []
    for position, item in enumerate(header.split(",")):
        media_range, params = parse(item)
        if not media_range:
            continue
        try:
            q = max(0.0, min(float(params.get("q", "1")), 1.0))
        except ValueError:
            q = 0.0
        ranges.append((-q, _wildcard(media_range), position, media_range))
    return tuple((media_range, -neg_q) for neg_q, _, _, media_range in sorted(ranges))


def _matches(media_range: str, offered: str) -> bool:
    if media_range in ("*/*", "*"):
        return True
    if media_range.endswith("/*"):
        return offered.startswith(media_range[:-1])
    return media_range == offered


@lru_cache(maxsize=256)
def negotiate(accept: str | None, offered: tuple[str, ...], default: str) -> str:
    """The media type to answer in. No Accept, or `*/*`, gets `default` (which must be offered)."""
    if not accept or not accept.strip():
        return default
    ranges = _accept_ranges(accept)
    refused = {media_range for media_range, q in ranges if q == 0 and not _wildcard(media_range)}
    for media_range, q in ranges:
        if q == 0:
            continue
        candidates = (default, *offered) if _wildcard(media_range) else offered
        for candidate in candidates:
            if candidate not in refused and _matches(media_range, candidate):
                return candidate
    raise NotAcceptable(f"cannot answer in {accept!r}; this model answers in {', '.join(offered)}")
