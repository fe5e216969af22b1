"""The text domain's sections of a run's report: the creative words and the writer at work."""

from __future__ import annotations

from clm.core.html import esc, missing, records_table, table_html
from clm.core.rundata import NOT_RECORDED, read_json_object, read_jsonl, read_text

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
        return missing(records.note or f"words/archive.jsonl: {NOT_RECORDED}")
    if not records.value:
        return missing("words/archive.jsonl is empty: no word was creative")
    best = sorted(records.value, key=lambda r: -float(r.get("score", 0)))
    shown = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in best]
    return (f'<p class="note">{len(best)} creative word(s), best score first: new (in no split of the corpus), '
            "at least as real to D as the median training word, fluent; each with the nearest training word "
            "and its edit distance.</p>" + records_table(shown, max_rows=60))

def section_text_edits(report) -> str:
    """The writer's edit sequences at its last evaluation, and G's plain samples."""
    seqs = read_json_object(report.run_dir / "words" / "edits.json")
    out = []
    if seqs.value is not None and seqs.value.get("episodes"):
        rows = []
        for e in seqs.value["episodes"]:
            steps = [f"{w or '(empty)'}" for w in e["words"]]
            trail = " → ".join(f"{steps[0]}" if i == 0 else f"[{a}] {steps[i]}"
                               for i, a in enumerate([""] + list(e["actions"])) if i < len(steps))
            rows.append([trail, f"{float(e['return']):.3f}"])
        out.append('<p class="note">One row per episode of the greedy writer: the word after each edit, '
                   "the edit in brackets, and the episode's return.</p>" + table_html(["edits", "return"], rows))
    else:
        out.append(missing(seqs.note or f"words/edits.json: {NOT_RECORDED}"))
    plain = read_text(report.run_dir / "words" / "plain_gan.txt")
    out.append("<h3>G's plain samples</h3>")
    if plain.value:
        words = plain.value.split()[:120]
        out.append(f'<p class="note">G\'s samples from the empty word at the end of the run.</p><p>'
                   f"{esc(', '.join(words))}</p>")
    else:
        out.append(missing(plain.note or f"words/plain_gan.txt: {NOT_RECORDED}"))
    return "".join(out)
