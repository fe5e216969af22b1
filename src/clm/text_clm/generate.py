"""``clm generate`` for a text run: words written by the run's writer (or G's plain samples)."""

from __future__ import annotations

import json
from pathlib import Path

from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_text
from clm.engine.collect import collect_distinct, shortfall_exit
from clm.text_clm.domain import load_text_run


def generate(args) -> int:
    """``clm generate`` for a text run: ``-n`` distinct creative words written by
    the run's writer (or G's plain samples), one per line, each followed by its
    metrics as JSON; fewer when ``--max-evaluations`` candidates (default 500 n)
    give no more (said on stderr; exit 1 with ``--strict``)."""
    search = args.search or "writer"
    if search not in ("writer", "random"):
        raise UsageError(f"--search {search} is not for text runs; a text run takes writer or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; a text run has none")
    out = Path(args.out)
    text, writer = load_text_run(args.run_dir)
    budget = args.max_evaluations or 500 * args.n

    def draw(k: int, rnd: int):
        words, records = text.generate_words(writer if search == "writer" else None, k, args.seed + 7_919 * rnd)
        return ((w, w, r, bool(r["creative"]) and bool(w)) for w, r in zip(words, records))

    # creative words: fluent, realistic, valid and new (to the corpus), meeting the run's constraint
    words, records, spent = collect_distinct(draw, args.n, budget, batch=max(64, 2 * args.n))
    atomic_write_text(out, "".join(f"{r['word']}\t{json.dumps({k: v for k, v in r.items() if k != 'word'})}\n"
                                   for r in records))
    print(f"wrote {len(words)} distinct creative words to {out} with {search} ({spent} candidates judged)")
    return shortfall_exit(len(words), args.n, spent, "distinct creative words", "candidates", args.strict)
