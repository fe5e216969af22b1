"""The design domain's sections of a run's report: G vs editor vs SIMP, strain energy, the creative archive."""

from __future__ import annotations

from clm.core.html import esc, img_tag, missing, records_table
from clm.core.rundata import NOT_RECORDED, read_jsonl

HEADLINE_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("design_within10_fraction", "Held-out designs after the editor: connected and within 10% of SIMP's compliance",
     "fraction"),
    ("g_within10_fraction", "G's proposals alone (one forward pass): connected and within 10% of SIMP's", "fraction"),
    ("design_median_ratio", "Median compliance / SIMP's, after the editor (lower is stiffer)", "number"),
    ("g_median_ratio", "Median compliance / SIMP's, G's proposals alone", "number"),
    ("design_creative_fraction", "Held-out designs that are creative (connected, within 10%, another topology)",
     "fraction"),
    ("design_solves_mean", "FE solves per held-out design (G's proposal + the editor's edits)", "number"),
    ("creative_designs", "Creative designs archived", "count"),
)
PICTURES = [
    ("side_by_side.png", "G vs editor vs SIMP", "Held-out load cases, one per row: G's proposal (one forward pass, "
     "made black and white at the volume fraction), the editor's design after its edits, and SIMP's design. Red "
     "arrows: the loads; blue: supports (squares clamped, > held in x, ^ held in y). Each title: compliance as a multiple of "
     "SIMP's (lower is stiffer), h holes and m members of the topology."),
    ("energy.png", "Strain energy", "The same designs as heat maps of each material element's strain energy "
     "(log10; bright: the members that carry the load)."),
    ("archive.png", "Creative designs", "The archive's best creative designs (connected, within 10% of SIMP's "
     "compliance, a topology other than SIMP's), with the load case each was made for."),
]


def section_design_pictures(report) -> str:
    out = []
    for name, title, note in PICTURES:
        path = report.run_dir / "pictures" / name
        out.append(f"<h3>{esc(title)}</h3>")
        if path.is_file():
            out.append(f'<p class="note">{esc(note)}</p>' + img_tag(path.read_bytes(), title, "levels"))
        else:
            out.append(missing(f"pictures/{name}: {NOT_RECORDED}"))
    return "".join(out)


def section_design_archive(report) -> str:
    records = read_jsonl(report.run_dir / "pictures" / "archive.jsonl")
    if records.value is None:
        return missing(records.note or f"pictures/archive.jsonl: {NOT_RECORDED}")
    if not records.value:
        return missing("pictures/archive.jsonl is empty: no design was creative")
    return (f'<p class="note">{len(records.value)} creative design(s): load case (index in the corpus), topology '
            "(holes, members), compliance over SIMP's, who made it, in which round.</p>" + records_table(records.value))
