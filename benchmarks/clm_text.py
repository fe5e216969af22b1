"""The CLM's text domain against maximum-likelihood baselines (issue 15's evidence).

For each seed, in this order (one after the other):

1. **n-gram**: the order-4 character model of the training words
   (:class:`clm.domains.text.ngram.CharNgram`, interpolated absolute
   discounting), sampled at each temperature of ``--temperatures``.
2. **LSTM (MLE)**: a character LSTM (embedding 32, one layer of
   ``--lstm-hidden``, 128) trained by maximum likelihood on the training
   words for ``--lstm-steps`` (2,000) Adam steps of 128 words (2.7 epochs;
   the CLM's GAN sees 5,000 batches of 128 real words), sampled at each
   temperature.
3. **clm**: ``clm run --domain text`` (default settings unless key=value
   given), then its writer's greedy words and its G's plain samples.
4. **clm, constrained**: the same with ``constraint=--constraint``; against
   it, the LSTM with rejection sampling at equal model calls: for each word
   the writer outputs, the LSTM draws as many words as the writer's episode
   used G proposals, and keeps the first that is new, fluent and meets the
   constraint; and the same with an LSTM given the CLM's care for the
   constraint (the training words that meet it as the same share of its
   batches as of the CLM's D, ``constraint_real_fraction``).

Every set of words is judged with the same metrics (clm.domains.text.metrics):
quality = NLL per symbol under a character model fitted on the held-out
split (``word_nll_heldout_model``; G, the writer and the baselines never saw
those words), diversity = the share of new words (``word_novel_fraction``)
and distinct trigrams. "On the MLE curve at equal novelty": the LSTM's
quality interpolated (linearly, in novelty) at the CLM's novelty, minus the
CLM's; >= 0 means on or beyond the curve. Mean and 95% t-interval over
seeds; the last line printed is one JSON object.

    .venv/bin/python benchmarks/clm_text.py --seeds 3 --out runs/text
    .venv/bin/python benchmarks/clm_text.py --seeds 3 --out runs/text-c --constrained-only
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from benchstats import ci95, clm_run

from clm.domains.text.metrics import text_metrics

KEYS = ("word_novel_fraction", "word_nll_heldout_model", "word_nll", "char_kl", "char_kl_floor", "word_distinct_3",
        "word_fluency_mean", "word_memorised_fraction", "word_unique_fraction", "word_edit_distance_mean",
        "word_valid_fraction")


class CharLSTM(torch.nn.Module):
    """A character language model of words: start symbol -> letters -> end."""

    def __init__(self, n_symbols: int, hidden: int = 256):
        super().__init__()
        self.start = n_symbols  # one more input symbol: the start
        self.embed = torch.nn.Embedding(n_symbols + 1, 32)
        self.lstm = torch.nn.LSTM(32, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, n_symbols)

    def forward(self, x, state=None):
        h, state = self.lstm(self.embed(x), state)
        return self.head(h), state


def train_lstm(idx: np.ndarray, n_symbols: int, hidden: int, steps: int, seed: int, batch: int = 128,
               extra: np.ndarray | None = None, extra_fraction: float = 0.0) -> CharLSTM:
    """MLE on (N, L+1) symbol rows (the word then end symbols; the loss stops after the first end);
    ``extra_fraction`` of each batch drawn from the rows ``extra`` (the constraint's words)."""
    torch.manual_seed(seed)
    model = CharLSTM(n_symbols, hidden)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = torch.from_numpy(idx)
    rng = np.random.default_rng(seed)
    for step in range(steps):
        rows = data[torch.from_numpy(rng.integers(len(data), size=batch))]
        k = int(round(batch * extra_fraction))
        if extra is not None and k:
            rows[batch - k:] = torch.from_numpy(extra[rng.integers(len(extra), size=k)])
        inp = torch.cat([torch.full((batch, 1), model.start), rows[:, :-1]], 1)
        logits, _ = model(inp)
        ended_before = torch.cat([torch.zeros(batch, 1, dtype=torch.bool), (rows[:, :-1] == 0).cumsum(1) > 0], 1)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, n_symbols), rows.reshape(-1), reduction="none")
        loss = (loss.reshape(batch, -1) * ~ended_before).sum() / (~ended_before).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        for g in opt.param_groups:  # linear decay to a tenth
            g["lr"] = 3e-3 * (1 - 0.9 * (step + 1) / steps)
    return model


@torch.no_grad()
def sample_lstm(model: CharLSTM, n: int, max_len: int, temperature: float, seed: int, alphabet) -> list[str]:
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1), model.start)
    state, out = None, torch.zeros(n, max_len, dtype=torch.long)
    alive = torch.ones(n, dtype=torch.bool)
    for t in range(max_len):
        logits, state = model(x, state)
        sym = torch.multinomial(torch.softmax(logits[:, -1] / temperature, 1), 1, generator=g)[:, 0]
        sym = torch.where(alive, sym, torch.zeros_like(sym))
        out[:, t] = sym
        alive &= sym != 0
        x = sym[:, None]
    return alphabet.decode_indices(out.numpy())


def judge(words, ref, constraint=None) -> dict:
    m = text_metrics(words, ref, constraint)
    return {k: m[k] for k in (*KEYS, "word_constraint_fraction") if k in m}


def at_novelty(curve: list[dict], novelty: float) -> float:
    """The curve's held-out-model NLL interpolated at ``novelty`` (clamped to its ends)."""
    pts = sorted((c["word_novel_fraction"], c["word_nll_heldout_model"]) for c in curve)
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return float(np.interp(novelty, xs, ys))


def good_words(words, ref, constraint, min_fluency: float) -> np.ndarray:
    """New, fluent (fluency >= the run's creative bar), valid words that meet the constraint."""
    ok = ref.novel(words) & ref.valid(words) & (ref.fluency(words) >= min_fluency)
    return ok & constraint.satisfied(words) if constraint is not None else ok


def self_arms(row: dict, text, writer, args, seed: int, run: Path) -> None:
    """The unconstrained CLM's words (its writer's and its G's), placed against both baselines' curves."""
    ref = text.ref
    writer_words, _ = text.generate_words(writer, args.words, seed + 1_000)
    row["clm_writer"] = judge(writer_words, ref)
    row["clm_g"] = judge(text.sample_words(args.words, np.random.default_rng(seed + 2_000)), ref)
    for arm in ("clm_writer", "clm_g"):
        nov = row[arm]["word_novel_fraction"]
        row[arm]["lstm_nll_at_equal_novelty"] = at_novelty(row["lstm"], nov)
        row[arm]["ngram_nll_at_equal_novelty"] = at_novelty(row["ngram"], nov)
        row[arm]["margin_vs_lstm"] = row[arm]["lstm_nll_at_equal_novelty"] - row[arm]["word_nll_heldout_model"]
        row[arm]["margin_vs_ngram"] = row[arm]["ngram_nll_at_equal_novelty"] - row[arm]["word_nll_heldout_model"]
    row["clm_seconds"] = json.loads((run / "summary.json").read_text())["wall_seconds"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--out", default="runs/text-bench")
    ap.add_argument("--words", type=int, default=512, help="words judged per set")
    ap.add_argument("--temperatures", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2, 1.5])
    ap.add_argument("--lstm-steps", type=int, default=2000)
    ap.add_argument("--lstm-hidden", type=int, default=128)
    ap.add_argument("--constraint", default="rhymes=night")
    ap.add_argument("--constrained-only", action="store_true",
                    help="only the constrained comparison (the baselines' curves and the unconstrained run skipped)")
    ap.add_argument("overrides", nargs="*", help="key=value for the clm runs")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    from clm.text_clm.domain import load_text_run

    rows = []
    for seed in range(args.seeds):
        t0 = time.perf_counter()
        row: dict = {"seed": seed}
        if not args.constrained_only:
            run = out / f"clm-s{seed}"
            clm_run(run, ["--domain", "text", f"seed={seed}", "report=false", *args.overrides])
            text, writer = load_text_run(run)
        else:
            crun = out / f"clm-constrained-s{seed}"
            clm_run(crun, ["--domain", "text", f"seed={seed}", "report=false", f"constraint={args.constraint}",
                           *args.overrides])
            text, writer = load_text_run(crun)
        ref, alphabet, L = text.ref, text.alphabet, text.L
        t1 = time.perf_counter()
        idx = alphabet.indices(text.split.train, L + 1)
        lstm = train_lstm(idx, alphabet.size, args.lstm_hidden, args.lstm_steps, seed)
        row["lstm_train_seconds"] = time.perf_counter() - t1
        if not args.constrained_only:
            rng = np.random.default_rng(seed)
            row["ngram"] = [{"temperature": t, **judge(ref.train_model.sample(args.words, rng, t, L), ref)}
                            for t in args.temperatures]
            row["lstm"] = [{"temperature": t, **judge(sample_lstm(lstm, args.words, L, t, seed, alphabet), ref)}
                           for t in args.temperatures]
            self_arms(row, text, writer, args, seed, run)
        if args.constraint:
            crun = out / f"clm-constrained-s{seed}"
            clm_run(crun, ["--domain", "text", f"seed={seed}", "report=false", f"constraint={args.constraint}",
                           *args.overrides])
            ctext, cwriter = load_text_run(crun)
            cons = ctext.constraint
            before = ctext.g_evaluations
            ctext.g_evaluations = 0
            env_words, episodes = ctext.write(cwriter.greedy_actions, args.words, seed + 3_000)
            # the proposals shown: K at the start and after each edit of each episode
            calls = int(sum(ctext.cfg.n_proposals * (len(e["actions"]) + 1) for e in episodes))
            ctext.g_evaluations = before
            per_word = max(1, round(calls / args.words))
            ok_clm = good_words(env_words, ref, cons, ctext.cfg.min_fluency)
            pool = sample_lstm(lstm, args.words * per_word, L, 1.0, seed + 4_000, alphabet)
            ok_pool = good_words(pool, ref, cons, ctext.cfg.min_fluency).reshape(args.words, per_word)
            # the same care for the baseline: an LSTM whose batches hold the constraint's training words in the
            # CLM's share (constraint_real_fraction), with rejection at equal calls
            meeting = [w for w, ok in zip(ctext.split.train, cons.satisfied(ctext.split.train)) if ok]
            lstm_c = train_lstm(idx, alphabet.size, args.lstm_hidden, args.lstm_steps, seed,
                                extra=alphabet.indices(meeting, L + 1), extra_fraction=ctext.cfg.constraint_real_fraction)
            pool_c = sample_lstm(lstm_c, args.words * per_word, L, 1.0, seed + 5_000, alphabet)
            ok_c = good_words(pool_c, ref, cons, ctext.cfg.min_fluency).reshape(args.words, per_word)
            row["constrained"] = {
                "constraint": args.constraint, "model_calls_per_word": per_word,
                "clm_good_fraction": float(ok_clm.mean()),
                "clm_distinct_good": len({w for w, k in zip(env_words, ok_clm) if k}),
                "clm_meets_fraction": float(cons.satisfied(env_words).mean()),
                "lstm_rejection_good_fraction": float(ok_pool.any(1).mean()),
                "lstm_rejection_distinct_good": len({pool[i * per_word + int(np.argmax(r))]
                                                     for i, r in enumerate(ok_pool) if r.any()}),
                "lstm_meets_fraction_per_call": float(cons.satisfied(pool).mean()),
                "lstm_reweighted_rejection_good_fraction": float(ok_c.any(1).mean()),
                "lstm_reweighted_rejection_distinct_good": len({pool_c[i * per_word + int(np.argmax(r))]
                                                                for i, r in enumerate(ok_c) if r.any()}),
                "lstm_reweighted_meets_fraction_per_call": float(cons.satisfied(pool_c).mean()),
                "clm_constrained": judge(env_words, ref, cons),
            }
        row["seconds"] = time.perf_counter() - t0
        rows.append(row)
        print(json.dumps({"seed": seed, "clm_writer": row.get("clm_writer"), "clm_g": row.get("clm_g"),
                          "constrained": row.get("constrained")}), flush=True)
    (out / ("rows-constrained.json" if args.constrained_only else "rows.json")).write_text(json.dumps(rows, indent=1))

    summary: dict = {"seeds": args.seeds, "words": args.words, "temperatures": args.temperatures}
    for name in ("ngram", "lstm") if not args.constrained_only else ():
        for i, t in enumerate(args.temperatures):
            for k in ("word_novel_fraction", "word_nll_heldout_model", "word_distinct_3", "char_kl"):
                summary[f"{name}_T{t:g}_{k}"] = ci95([r[name][i][k] for r in rows])
    for arm in ("clm_writer", "clm_g") if not args.constrained_only else ():
        for k in ("word_novel_fraction", "word_nll_heldout_model", "word_distinct_3", "char_kl", "char_kl_floor",
                  "margin_vs_lstm", "margin_vs_ngram", "lstm_nll_at_equal_novelty", "word_fluency_mean"):
            summary[f"{arm}_{k}"] = ci95([r[arm][k] for r in rows])
    if args.constraint:
        for k in ("clm_good_fraction", "lstm_rejection_good_fraction", "clm_meets_fraction", "model_calls_per_word",
                  "clm_distinct_good", "lstm_rejection_distinct_good", "lstm_reweighted_rejection_good_fraction",
                  "lstm_reweighted_rejection_distinct_good", "lstm_reweighted_meets_fraction_per_call"):
            summary[f"constrained_{k}"] = ci95([r["constrained"][k] for r in rows])
        summary["constrained_good_difference"] = ci95([r["constrained"]["clm_good_fraction"]
                                                       - r["constrained"]["lstm_rejection_good_fraction"] for r in rows])
        summary["constrained_good_difference_reweighted"] = ci95([r["constrained"]["clm_good_fraction"]
                                                                  - r["constrained"]["lstm_reweighted_rejection_good_fraction"]
                                                                  for r in rows])
    summary["lstm_train_seconds"] = ci95([r["lstm_train_seconds"] for r in rows])
    if not args.constrained_only:
        summary["clm_seconds"] = ci95([r["clm_seconds"] for r in rows])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
