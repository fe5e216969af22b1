"""The report from Jinja2 templates: the same content as the f-string
renderer it replaced, section by section, on one run (the golden file was
written by that renderer at commit 124d353, before the templates), and
autoescaping of everything a run folder holds."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

from clm.art_clm.report import section_art_archive, section_art_pictures
from clm.report import build_report_html
from clm.report.html import RunReport
from clm.text_clm.report import section_text_edits, section_text_gallery
from report_domain_runs import make_art_run, make_text_run
from test_report import make_run_dir

GOLDEN = Path(__file__).parent / "data" / "report_sections_levels.json"


def same_entities(text: str) -> str:
    """Python's html.escape writes &#x27; and &quot;, Jinja2's autoescape &#39; and &#34;: the same characters."""
    return text.replace("&#x27;", "&#39;").replace("&quot;", "&#34;")


def normalise(text: str, run_dir: Path) -> str:
    """Whitespace between and inside tags collapsed, embedded PNGs as a hash of their bytes, the run's path as RUN_DIR."""
    text = re.sub(r"data:image/png;base64,([A-Za-z0-9+/=]+)",
                  lambda m: "png:" + hashlib.sha256(base64.b64decode(m.group(1))).hexdigest()[:16], text)
    text = text.replace(str(run_dir.resolve()), "RUN_DIR").replace(str(run_dir), "RUN_DIR")
    text = re.sub(r">\s+<", "><", text)
    return re.sub(r"\s+", " ", text).strip()


def report_parts(html: str, run_dir: Path) -> dict[str, str]:
    """The report cut into its parts: title, banner, nav, each section by id, footer (the time stamp left out)."""
    parts = {"title": re.search(r"<title>(.*?)</title>", html, re.S).group(1),
             "banner": re.search(r'(<div class="banner.*?)<nav>', html, re.S).group(1),
             "nav": re.search(r"<nav>(.*?)</nav>", html, re.S).group(1),
             "footer": re.search(r"<footer>(.*?)</footer>", html, re.S).group(1)}
    for sid, body in re.findall(r'<section id="([^"]+)">(.*?)</section>', html, re.S):
        parts[f"section:{sid}"] = body
    return {k: normalise(v, run_dir) for k, v in parts.items()}


def test_templated_report_has_the_content_of_the_f_string_renderer_section_by_section(tmp_path):
    run = make_run_dir(tmp_path)
    got = report_parts(build_report_html(run), run)
    want = json.loads(GOLDEN.read_text())
    assert list(got) == list(want)  # the same parts in the same order
    for key in want:
        assert same_entities(got[key]) == same_entities(want[key]), key


def test_every_value_from_the_run_folder_is_escaped(tmp_path):
    run = make_run_dir(tmp_path)
    (run / "metrics.jsonl").unlink()  # no curves to draw: this test reads the text
    evil = "<img src=x onerror=alert(1)>"
    summary = json.loads((run / "summary.json").read_text())
    summary.update(message=f"stopped {evil}", **{f"key{evil}": 1.5})
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "evidence.json").write_text(json.dumps({"problem1": {"note": evil, "rows": [{"pool": evil, "x": 1}]},
                                                   evil: [1, 2]}))
    with open(run / "levels" / "archive.jsonl", "a") as f:
        f.write(json.dumps({"novelty": evil}) + "\n")
    real = (run / "levels" / "real.txt").read_text().replace("; 0\n", f"; {evil}\n", 1)
    (run / "levels" / "real.txt").write_text(real)
    text = build_report_html(run)
    assert evil not in text
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    # the banner, the headline's other figures, the evidence (title, table, note), the archive table
    assert text.count(escaped) >= 6
    # inside the player's JSON (a script element, where entities are not decoded) it is JSON-escaped instead
    data = re.search(r'<script type="application/json" id="clm-levels">(.*?)</script>', text, re.S).group(1)
    assert "<" not in data and json.loads(data)["real"][0]["name"] == f"real/{evil}"


def test_art_and_text_sections_have_the_content_of_the_f_string_renderer(tmp_path):
    """The art and text runs' own sections against the f-string functions' output (written from main's
    art_clm/report.py and text_clm/report.py before the templates; tests/data/report_sections_art_text.json)."""
    want = json.loads((GOLDEN.parent / "report_sections_art_text.json").read_text())
    art, text = make_art_run(tmp_path), make_text_run(tmp_path)
    for run, sections in ((art, [section_art_pictures, section_art_archive]),
                          (text, [section_text_gallery, section_text_edits])):
        report = RunReport(run)
        for section in sections:
            assert same_entities(normalise(section(report), run)) == same_entities(want[section.__name__])
    assert "&lt;zop&gt;" in section_text_gallery(RunReport(text)) and "<i>ick" not in section_text_edits(RunReport(text))
