"""Media types: `Content-Type` with its parameters, and `Accept` negotiation with q-values."""

from __future__ import annotations

from functools import lru_cache

from ..errors import NotAcceptable, quoted


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


def _specificity(media_range: str, candidate: str) -> int:
    """How closely a range matches a type: 3 exact, 2 `type/*`, 1 `*/*`, 0 not at all."""
    if media_range == candidate:
        return 3
    if media_range.endswith("/*") and media_range != "*/*":
        return 2 if candidate.startswith(media_range[:-1]) else 0
    return 1 if media_range in ("*/*", "*") else 0


@lru_cache(maxsize=256)
def _accept_ranges(header: str) -> tuple[tuple[str, float], ...]:
    ranges = []
    for item in header.split(","):
        media_range, params = parse(item)
        if not media_range:
            continue
        try:
            q = max(0.0, min(float(params.get("q", "1")), 1.0))
        except ValueError:
            q = 0.0
        ranges.append((media_range, q))
    return tuple(ranges)


@lru_cache(maxsize=256)
def negotiate(accept: str | None, offered: tuple[str, ...], default: str) -> str:
    """The media type to answer in, by RFC 9110: each offered type takes the q of the most specific
    range that matches it; the highest q wins; ties go to the range named first, then the default.
    No Accept, or a blank one, gets `default` (which must be offered)."""
    if not accept or not accept.strip():
        return default
    ranges = _accept_ranges(accept)
    best, best_key = None, None
    for order, candidate in enumerate((default, *[t for t in offered if t != default])):
        matches = [(_specificity(r, candidate), q, -position)
                   for position, (r, q) in enumerate(ranges) if _specificity(r, candidate)]
        if not matches:
            continue
        _, q, position = max(matches)  # the most specific range decides
        key = (q, position, -order)  # ties: the range named first, then the default
        if q > 0 and (best_key is None or key > best_key):
            best, best_key = candidate, key
    if best is None:
        raise NotAcceptable(f"cannot answer in {quoted(accept)}; this model answers in {', '.join(offered)}")
    return best
