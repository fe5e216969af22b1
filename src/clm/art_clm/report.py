"""The art domain's sections of a run's report: the painter's pictures and the archive table."""

from __future__ import annotations

from clm.core.rundata import NOT_RECORDED, read_jsonl
from clm.core.templating import render

_PACKAGE = "clm.art_clm"

# the art domain's headline (``clm run --domain art``)
HEADLINE_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("creative_canvases", "Creative canvases (archive size)", "count"),
    ("canvas_creative_fraction", "Painter's canvases that are creative (realistic, recognisable, novel)", "fraction"),
    ("canvas_realism", "D's realism of the painter's canvases", "number"),
    ("canvas_recognisable_fraction", "Painter's canvases the digits classifier recognises", "fraction"),
    ("canvas_fd_clf_ratio", "FD-clf of the painter's canvases / the real floor", "number"),
    ("plain_gan_fd_clf_ratio", "FD-clf of G's plain samples / the real floor", "number"),
    ("canvas_coverage", "Coverage of the held-out digits by the painter's canvases", "fraction"),
    ("g_evaluations", "G evaluations", "count"),
)
# art pictures: file in pictures/ -> (title, note)
ART_PICTURES = [
    ("episodes.png", "The painter at work", "One row per episode of the greedy painter at its last evaluation: "
     "the canvas from blank (left) to the finished work (right), one column per action."),
    ("gallery.png", "The creative gallery", "Creative canvases in pairs: each canvas, then the training image "
     "nearest to it (a canvas that copied a training digit would look like its neighbour)."),
    ("plain_gan.png", "G's plain samples", "G's samples from a blank canvas at the end of the run."),
    ("real.png", "Real digits", "Training images, resized to the canvas."),
]


def section_art_pictures(report) -> str:
    """The art run's pictures (pictures/*.png), each with what it shows."""
    pictures = []
    for name, title, note in ART_PICTURES:
        path = report.run_dir / "pictures" / name
        pictures.append({"name": name, "title": title, "note": note,
                         "png": path.read_bytes() if path.is_file() else None})
    return render(_PACKAGE, "pictures.html.j2", pictures=pictures)


def section_art_archive(report) -> str:
    records = read_jsonl(report.run_dir / "pictures" / "archive.jsonl")
    if records.value is None:
        return render(_PACKAGE, "archive.html.j2",
                      missing_note=records.note or f"pictures/archive.jsonl: {NOT_RECORDED}")
    if not records.value:
        return render(_PACKAGE, "archive.html.j2", missing_note="pictures/archive.jsonl is empty: no canvas was creative")
    return render(_PACKAGE, "archive.html.j2", missing_note=None, records=records.value)
