"""The text domain's sections of a run's report: the creative words and the writer at work."""

from __future__ import annotations

from clm.core.rundata import NOT_RECORDED, read_json_object, read_jsonl, read_text
from clm.core.templating import render

_PACKAGE = "clm.text_clm"

# the text domain's headline (``clm run --domain text``)
HEADLINE_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("creative_words", "Creative words (archive size)", "count"),
    ("text_creative_fraction", "Writer's words that are creative (new, real to D, fluent, meeting the constraint)",
     "fraction"),
    ("plain_gan_creative_fraction", "G's plain samples that are creative", "fraction"),
    ("text_realism", "D's realism of the writer's words", "number"),
    ("text_fluency", "Fluency of the writer's words (1: as likely per letter as the median real word)", "number"),
    ("text_novel_fraction", "Writer's words that are new (in no split of the corpus)", "fraction"),
    ("text_constraint_fraction", "Writer's words meeting the constraint", "fraction"),
    ("g_evaluations", "G evaluations", "count"),
)


def section_text_gallery(report) -> str:
    """The creative words, best first, with their scores and nearest training word."""
    records = read_jsonl(report.run_dir / "words" / "archive.jsonl")
    if records.value is None:
        return render(_PACKAGE, "gallery.html.j2", missing_note=records.note or f"words/archive.jsonl: {NOT_RECORDED}")
    if not records.value:
        return render(_PACKAGE, "gallery.html.j2", missing_note="words/archive.jsonl is empty: no word was creative")
    best = sorted(records.value, key=lambda r: -float(r.get("score", 0)))
    shown = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in best]
    return render(_PACKAGE, "gallery.html.j2", missing_note=None, records=shown)


def section_text_edits(report) -> str:
    """The writer's edit sequences at its last evaluation, and G's plain samples."""
    seqs = read_json_object(report.run_dir / "words" / "edits.json")
    rows = None
    if seqs.value is not None and seqs.value.get("episodes"):
        rows = []
        for e in seqs.value["episodes"]:
            steps = [f"{w or '(empty)'}" for w in e["words"]]
            trail = " → ".join(f"{steps[0]}" if i == 0 else f"[{a}] {steps[i]}"
                               for i, a in enumerate([""] + list(e["actions"])) if i < len(steps))
            rows.append([trail, f"{float(e['return']):.3f}"])
    plain = read_text(report.run_dir / "words" / "plain_gan.txt")
    return render(_PACKAGE, "edits.html.j2", rows=rows, edits_missing=seqs.note or f"words/edits.json: {NOT_RECORDED}",
                  plain=", ".join(plain.value.split()[:120]) if plain.value else "",
                  plain_missing=plain.note or f"words/plain_gan.txt: {NOT_RECORDED}")
