"""Art and text run folders as `clm run --domain art|text` writes the parts their report sections read
(pictures/, words/), made by hand for the report's tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image


def png(seed: int, size: int = 24) -> bytes:
    pixels = (np.random.default_rng(seed).random((size, size)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def make_art_run(root: Path) -> Path:
    run = root / "art"
    (run / "pictures").mkdir(parents=True)
    (run / "pictures" / "episodes.png").write_bytes(png(0))
    (run / "pictures" / "real.png").write_bytes(png(1))
    (run / "pictures" / "archive.jsonl").write_text("".join(
        json.dumps({"realism": 0.5 + i / 10, "novelty": 1.2 + i, "label": i, "note": "<b>x</b>"}) + "\n"
        for i in range(3)))
    (run / "summary.json").write_text(json.dumps({"status": "ok", "domain": "art", "creative_canvases": 3}))
    return run


def make_text_run(root: Path) -> Path:
    run = root / "text"
    (run / "words").mkdir(parents=True)
    (run / "words" / "archive.jsonl").write_text("".join(
        json.dumps({"word": w, "score": s, "realism": 0.61234, "nearest": "cat", "distance": 1}) + "\n"
        for w, s in (("blick", 1.5), ("strat", 2.25), ("<zop>", 0.5))))
    (run / "words" / "edits.json").write_text(json.dumps({"episodes": [
        {"words": ["", "cat", "cast"], "actions": ["take proposal 0", "insert proposal 1's letter 2"], "return": 1.25},
        {"words": ["", "dog"], "actions": ["take proposal 1"], "return": -0.5}]}))
    (run / "words" / "plain_gan.txt").write_text("flim\nbrask\n<i>ick</i>\n")
    (run / "summary.json").write_text(json.dumps({"status": "ok", "domain": "text", "creative_words": 3}))
    return run
