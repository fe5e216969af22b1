"""Attributions of a text run: the writer's decision and D's realism per letter (see clm.engine.attribution)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.core.rundir import atomic_write_bytes, atomic_write_text
from clm.domains.heatmaps import Panel, attribution_sheet, colour_scale
from clm.domains.text.pictures import word_heatmap, word_picture
from clm.engine.attribution import (
    CONTEXT_SIZE,
    MARKER,
    Attribution,
    attribute,
    attribution_record,
    captum_attr,
    greedy_decisions,
    needs_context,
    randomisation_check,
    realism_logit,
)
from clm.text_clm.domain import load_text_run


def explain_text_run(run_dir: str | Path, out: Path, n: int = 4, sanity: bool = True) -> dict[str, Any]:
    """The writer's last decision of ``n`` greedy episodes (over its word and
    G's proposals) and D's realism of the archive's words (else the written
    ones), explained per letter cell, into ``out``."""
    captum_attr()
    text, writer = load_text_run(run_dir)
    D, cfg, L, C = text.gan.D, text.cfg, text.L, text.C
    env = text.word_env(n, cfg.seed + 700)
    obs, actions = greedy_decisions(env, writer.greedy_actions, cfg.episode_steps)
    x = torch.from_numpy(obs).float()
    base = torch.zeros_like(x)
    base[:, -1] = x[:, -1]  # the time feature is kept (not explained)
    q_net = writer.q.eval()
    pa = attribute(q_net, x, base, torch.from_numpy(actions))
    k = cfg.n_proposals
    rows_of = lambda a: a[:, :-1].reshape(len(a), 1 + k, L, C)  # noqa: E731  (the word, then each proposal)
    p_ig, p_sal = rows_of(pa.integrated_gradients).sum(3), rows_of(pa.saliency).max(3)
    symbols = rows_of(obs).argmax(3)  # (N, 1 + K, L)
    archive = _archive_words(Path(run_dir))
    words, source = (archive[:n], "the run's creative archive (words/archive.jsonl)") if archive else (
        [text.words_of(s[None, 0])[0] for s in symbols], "the words the greedy writer was editing")
    grids = torch.from_numpy(text.onehot(words)).float()
    context = text.real_data()[:CONTEXT_SIZE].cpu() if needs_context(D) else None
    da = attribute(realism_logit(D, context), grids, torch.zeros_like(grids), None)
    d_ig, d_sal = da.integrated_gradients.sum(1)[:, 0], da.saliency.max(1)[:, 0]  # (N, L)
    letters = lambda idx: ["" if s == 0 else text.alphabet.letters[s - 1] for s in idx]  # noqa: E731
    items = []
    for i in range(len(x)):
        s_ig, s_sal = colour_scale(p_ig[i]), colour_scale(p_sal[i])
        rows = [[Panel("word at the decision" if r == 0 else f"proposal {r}", word_picture(letters(symbols[i, r]))),
                 Panel(f"writer IG: action {int(actions[i])}" if r == 0 else "writer IG",
                       word_heatmap(letters(symbols[i, r]), p_ig[i, r], True, s_ig), True, s_ig),
                 Panel("writer saliency", word_heatmap(letters(symbols[i, r]), p_sal[i, r], False, s_sal), False, s_sal)]
                for r in range(1 + k)]
        item = {"action": int(actions[i]), "q_chosen": float(pa.score[i]), "q_baseline": float(pa.baseline_score[i]),
                "player_ig_sum": float(pa.integrated_gradients[i].sum()),
                "player_ig_delta": float(pa.convergence_delta[i])}
        if i < len(words):
            cells = letters(text.alphabet.indices([words[i]], L)[0])
            realism = 1.0 / (1.0 + np.exp(-float(da.score[i])))
            rows.append([Panel(f"word {words[i]!r}", word_picture(cells)),
                         Panel(f"D IG: realism {realism:.2f}", word_heatmap(cells, d_ig[i], True, colour_scale(d_ig[i])),
                               True, colour_scale(d_ig[i])),
                         Panel("D saliency", word_heatmap(cells, d_sal[i], False, colour_scale(d_sal[i])), False,
                               colour_scale(d_sal[i]))])
            item.update(word=words[i], realism=realism, realism_logit=float(da.score[i]),
                        realism_logit_baseline=float(da.baseline_score[i]), d_ig_sum=float(d_ig[i].sum()),
                        d_ig_delta=float(da.convergence_delta[i]))
        name = f"word-{i}.png"
        atomic_write_bytes(out / name, attribution_sheet(rows, panel_inches=2.6, aspect=0.25))
        items.append({"picture": name, **item})
    record = attribution_record("text", source, items, "the all-zero grid (no letter anywhere; the time feature kept)",
                     "the writer's Q-value of its greedy action", "D's realism logit")
    if sanity:
        from clm.agents.dqn import q_network_args
        from clm.agents.networks import QNetwork

        torch.manual_seed(cfg.seed + 4_242)
        fresh_q = QNetwork(**q_network_args(writer.cfg, tuple(x.shape[1:]), writer.n_actions)).eval()
        _, fresh_d = text.build_gan(tuple(grids.shape[1:]), torch.device("cpu"))

        def per_letter(a: Attribution) -> tuple[np.ndarray, np.ndarray]:
            return rows_of(a.integrated_gradients).sum(3), rows_of(a.saliency).max(3)

        record["sanity"] = {
            "player": randomisation_check(q_net, fresh_q, lambda net: net, x, base, torch.from_numpy(actions),
                                          per_letter),
            "discriminator": randomisation_check(D, fresh_d.eval(), lambda net: realism_logit(net, context), grids,
                                                 torch.zeros_like(grids), None)}
    atomic_write_text(out / MARKER, json.dumps(record, indent=2) + "\n")
    return record


def _archive_words(run_dir: Path) -> list[str]:
    path = run_dir / "words" / "archive.jsonl"
    if not path.is_file():
        return []
    words = []
    for line in path.read_text().splitlines():
        try:
            w = json.loads(line).get("word")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(w, str) and w:
            words.append(w)
    return words
