"""``clm generate`` for a text run: words written by the run's writer (or G's plain samples)."""

from __future__ import annotations

import json
from pathlib import Path

from clm.core.errors import UsageError
from clm.core.rundir import atomic_write_text
from clm.text_clm.domain import load_text_run


def generate(args) -> int:
    """``clm generate`` for a text run: words written by the run's writer (or
    G's plain samples), one per line, each followed by its metrics as JSON."""
    search = args.search or "writer"
    if search not in ("writer", "random"):
        raise UsageError(f"--search {search} is not for text runs; a text run takes writer or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; a text run has none")
    out = Path(args.out)
    text, writer = load_text_run(args.run_dir)
    words, records = text.generate_words(writer if search == "writer" else None, args.n, args.seed)
    atomic_write_text(out, "".join(f"{r['word']}\t{json.dumps({k: v for k, v in r.items() if k != 'word'})}\n"
                                   for r in records))
    creative = sum(r["creative"] for r in records)
    print(f"wrote {len(records)} words to {out} ({creative} creative, {sum(r['novel'] for r in records)} new) "
          f"with {search}")
    return 0
