"""The one table of levels searches: every search ``clm generate --search``,
``clm serve`` and the benchmarks may name, latent and edit alike.

A search registers itself where it is defined (``clm.levels_clm.qd`` the
searches of G's latent space, ``clm.levels_clm.edit_qd`` the searches that
edit G's levels); this module imports neither, so both can import it (the
edit searches build on the latent problem: ``edit_qd`` imports ``qd``, never
the other way). Importing any module of ``clm.levels_clm`` runs the
package's ``__init__``, which imports both, so the table is complete before
any caller reads it.

Each entry says what a caller needs to run it without switching on its name:
whether it needs the run's designer DQN, whether its judge should cache
layouts (edits meet the same layout again; G's samples rarely do), and the
most boxes its levels may hold (``None``: as many as G decodes, the corpus's
usual count), which bounds the difficulty one may ask of it
(:func:`clm.levels_clm.generate.max_optimal_pushes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from clm.core.errors import UsageError

SearchFn = Callable[..., None]  #: ``fn(problem, seed, **options)``: spends ``problem``'s budget


@dataclass(frozen=True)
class LevelSearch:
    name: str
    fn: SearchFn
    kind: str  #: "latent" (searches z of G) or "edit" (edits G's levels)
    needs_designer: bool = False  #: needs a CLM run's designer DQN (designer_search=true)
    caches_layouts: bool = False  #: judged through a cache by layout (edit_qd.CachedJudge)
    max_boxes: int | None = None  #: most boxes its levels hold; None: G's decoding (the corpus's usual count)


KINDS = ("latent", "edit")
#: name -> search, in registration order (the latent searches first)
SEARCHES: dict[str, LevelSearch] = {}


def register_search(search: LevelSearch) -> LevelSearch:
    """Add a search to the table; a second search of the same name is a programming error."""
    if search.kind not in KINDS:
        raise ValueError(f"search {search.name!r}: kind must be one of {KINDS}, got {search.kind!r}")
    if search.name in SEARCHES:
        raise ValueError(f"levels search {search.name!r} is registered twice ({SEARCHES[search.name].fn.__module__} "
                         f"and {search.fn.__module__})")
    SEARCHES[search.name] = search
    return search


def search_names(kind: str | None = None, designer: bool = True) -> list[str]:
    """The registered names, of one ``kind`` if given; without those that need a designer unless ``designer``."""
    return [s.name for s in SEARCHES.values()
            if (kind is None or s.kind == kind) and (designer or not s.needs_designer)]


def get_search(name: str, what: str = "search") -> LevelSearch:
    """The search ``name``; an unknown one is a user's mistake (exit 2) listing the valid names."""
    if name not in SEARCHES:
        raise UsageError(f"{what} {name!r} is not for levels runs; a levels run takes {', '.join(SEARCHES)}")
    return SEARCHES[name]
