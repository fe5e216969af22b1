"""``clm generate -n N``'s promise, for every domain: N distinct artefacts
that pass the domain's judge, or, when the evaluation budget runs out first,
those found and a count of them (exit 0, or 1 with ``--strict``)."""

from __future__ import annotations

import sys
from typing import Any, Callable, Hashable, Iterable

#: a draw of ``k`` candidates (the ``round``-th draw): (key, artefact, record, passes the judge) each
Draw = Callable[[int, int], Iterable[tuple[Hashable, Any, dict, bool]]]


def collect_distinct(draw: Draw, n: int, budget: int, batch: int) -> tuple[list[Any], list[dict], int]:
    """Draw batches of candidates until ``n`` distinct ones (by key) passed the
    judge or ``budget`` candidates were drawn: (the artefacts, their records, candidates drawn)."""
    chosen: dict[Hashable, tuple[Any, dict]] = {}
    spent = rnd = 0
    while len(chosen) < n and spent < budget:
        k = min(batch, budget - spent)
        for key, item, record, ok in draw(k, rnd):
            if ok and key not in chosen and len(chosen) < n:
                chosen[key] = (item, record)
        spent += k
        rnd += 1
    return [a for a, _ in chosen.values()], [r for _, r in chosen.values()], spent


def shortfall_exit(found: int, n: int, spent: int, what: str, unit: str, strict: bool) -> int:
    """Say on stderr how many of ``n`` were found within ``spent`` evaluations; the exit code
    (0, or 1 under ``--strict``). Nothing is said when all ``n`` were found."""
    if found >= n:
        return 0
    print(f"{'error' if strict else 'warning'}: found {found} of {n} {what} that pass the run's judge within "
          f"{spent} {unit}; raise --max-evaluations for more", file=sys.stderr)
    return 1 if strict else 0
