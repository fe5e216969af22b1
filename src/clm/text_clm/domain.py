"""The CLM on text: a writer DQN edits a word with G's proposals, D judges how
real the word reads (the seed's section 6.3). Default task: inventing new
words that read like English (the CMU Pronouncing Dictionary's words).

One implementation of :class:`clm.engine.domain.CLMDomain`:

- **agent -> G**: the writer's word is G's condition: at every edit G
  proposes ``n_proposals`` words that continue it, and the writer takes,
  splices, or borrows letters from one of them, deletes a letter, or stops
  (:class:`clm.domains.text.edit_env.WordEditVecEnv`).
- **D -> agent**: each edit's reward is the change of D's realism plus
  fluency (a character model of the training words); the episode's end adds
  novelty (not in the corpus) and the user's constraint when one is given.
- **agent -> G**: G learns, besides D's feedback, to keep the letters of the
  word it continues and to propose what the writer kept in its creative words.
- **creative -> D**: creative words (novel, real to D, fluent, meeting the
  constraint) join D's real data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.agents.state_check import MAX_COUNT
from clm.core.rundir import atomic_write_text
from clm.core.state_schema import (
    Bool,
    Fixed,
    Float,
    Int,
    Mismatch,
    Rec,
    Schema,
    Seq,
    StateMismatch,
    Str,
    describe,
    validate,
)
from clm.domains.text.constraints import parse_constraint
from clm.domains.text.corpus import load_word_split
from clm.domains.text.edit_env import WordEditVecEnv, edit_action_names
from clm.domains.text.metrics import TextReference, nearest_words
from clm.engine.archive import ScoredArchive
from clm.engine.domain import ProposalDomain
from clm.engine.parts import mixed_real_batch
from clm.engine.runs import load_domain_run
from clm.gan.models import ImageDiscriminator, TileGenerator
from clm.text_clm.config import TextConfig


class _Word(Schema):
    """A word of the run's alphabet, at most ``max_len`` letters (in a checkpoint's state)."""

    def __init__(self, alphabet, max_len: int):
        self.letters, self.max_len = set(alphabet.letters), max_len

    def check(self, v, path):
        if not isinstance(v, str) or len(v) > self.max_len or not set(v) <= self.letters:
            raise Mismatch(path, f"a word of at most {self.max_len} letters of the run's alphabet", describe(v))


class TextCLM(ProposalDomain):
    """The CLM's text domain (``clm run --domain text``)."""

    name = "text"
    evaluation_keys = ("text_creative_fraction", "text_realism", "text_fluency", "text_novel_fraction",
                       "text_nll", "text_constraint_fraction")

    def __init__(self, cfg: TextConfig, device: torch.device, run_dir: Path | None = None):
        self.cfg, self.device, self.run_dir = cfg, device, run_dir
        self.split = load_word_split(cfg.data, cfg.alphabet, cfg.min_len, cfg.max_len, cfg.held_out_fraction,
                                     cfg.split_seed, cfg.lowercase)
        self.alphabet, self.L, self.C = self.split.alphabet, cfg.max_len, self.split.alphabet.size
        self.ref = TextReference(self.split, cfg.min_len)
        self.constraint = parse_constraint(cfg.constraint, cfg.alphabet, cfg.min_len, cfg.max_len)
        self.train_x = torch.from_numpy(self.alphabet.onehot(self.split.train, self.L)).to(device)
        self.bar_words = [self.split.train[i] for i in np.random.default_rng(0).choice(len(self.split.train), 256,
                                                                                        replace=len(self.split.train) < 256)]
        self.archive = ScoredArchive(cfg.archive_size)
        self.realism_bar = 0.5
        self.g_evaluations = 0
        self.states: list[str] = [""]  # the writer's words on the way (G's conditions)
        self.kept: list[tuple[str, str]] = []  # (a word on the way, the creative word it became)
        self.unfinished: list[str] = []  # the writer's words on the way (D's other fakes)
        self.feedback_x: torch.Tensor | None = None
        # the training words that meet the constraint: a share of D's real data, so that G learns to make them
        meeting = [w for w, ok in zip(self.split.train, self.constraint.satisfied(self.split.train))
                   if ok] if self.constraint is not None else []
        self.meeting_x = torch.from_numpy(self.onehot(meeting)).to(device) if meeting else None
        self.last_episodes: list[dict] = []
        self.eval_episodes: list[dict] = []

    # -- words <-> grids ---------------------------------------------------------------------------
    def words_of(self, idx: np.ndarray) -> list[str]:
        return self.alphabet.decode_indices(idx)

    def onehot(self, words: list[str]) -> np.ndarray:
        return self.alphabet.onehot(words, self.L)

    # -- judging -----------------------------------------------------------------------------------
    def realism(self, words: list[str]) -> np.ndarray:
        """D's probability that each word is real."""
        return self.grid_realism(self.onehot(words))

    @torch.no_grad()
    def grid_realism(self, grids: np.ndarray) -> np.ndarray:
        """D's probability that each one-hot word grid (N, C, 1, L) is real."""
        if not len(grids):
            return np.zeros(0)
        logits, _ = self.gan.D(torch.from_numpy(grids).to(self.device))
        return torch.sigmoid(logits.float()).cpu().numpy().astype(np.float64)

    def judge(self, words: list[str]) -> dict[str, np.ndarray]:
        """Realism (D), fluency, valid length, novel (in no split of the
        corpus), the constraint, the score and creative."""
        real, flu = self.realism(words), self.ref.fluency(words)
        valid, novel = self.ref.valid(words), self.ref.novel(words)
        meets = self.constraint.satisfied(words) if self.constraint is not None else np.ones(len(words), bool)
        good = valid & (real >= self.realism_bar) & (flu >= self.cfg.min_fluency)
        creative = good & novel & meets
        score = real + flu + novel * good + meets * good
        return {"realism": real, "fluency": flu, "valid": valid, "novel": novel, "meets": meets, "score": score,
                "creative": creative}

    def potential(self, idx: np.ndarray) -> np.ndarray:
        """The writer's per-edit potential: realism and fluency, weighted (0 for the empty word)."""
        words = self.words_of(idx)  # the env's grids go to D as they are, not through the words again
        p = self.cfg.realism_weight * self.grid_realism(self.alphabet.onehot_indices(idx)) + \
            self.cfg.fluency_weight * self.ref.fluency(words)
        return np.where(idx[:, 0] != 0, p, 0.0)

    def final_bonus(self, idx: np.ndarray) -> np.ndarray:
        """Novelty and the constraint, each counted as far as the word is fluent (and of a valid length)."""
        words = self.words_of(idx)
        flu = self.ref.fluency(words) * self.ref.valid(words)
        bonus = self.cfg.novelty_weight * self.ref.novel(words) * flu
        if self.constraint is not None:
            bonus = bonus + self.cfg.constraint_weight * self.constraint.satisfied(words) * flu
        return bonus

    # -- step 1 ------------------------------------------------------------------------------------
    def real_data(self) -> torch.Tensor:
        return self.train_x

    def build_gan(self, shape, device):
        g = self.cfg.gan
        G = TileGenerator(self.C, 1, self.L, g.z_dim, g.g_width, self.C * self.L, "mlp", g.gumbel_tau,
                          g.tile_sample).to(device)
        D = ImageDiscriminator(shape, g.d_width, 0, "resconv" if self.cfg.d_arch == "conv" else "mlp",
                               g.spectral_norm, False, res_blocks=2).to(device)
        return G, D

    @torch.no_grad()
    def propose(self, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """G's ``n_proposals`` words continuing each word (N, L) -> (N, K, L),
        z drawn with the env's generator; each letter G's most likely
        (``gan.tile_sample=argmax``) or drawn from its probabilities."""
        n, k = len(idx), self.cfg.n_proposals
        cond = self.alphabet.onehot_indices(idx).reshape(n, -1)
        cond = torch.from_numpy(np.repeat(cond, k, axis=0)).to(self.device)
        z = torch.from_numpy(rng.standard_normal((n * k, self.cfg.gan.z_dim)).astype(np.float32)).to(self.device)
        probs = self.gan.sampler.probs(z, cond).float().cpu().numpy()[:, :, 0, :]  # (n*k, C, L)
        if self.cfg.gan.tile_sample == "argmax":
            sym = probs.argmax(1)
        else:
            sym = (probs.cumsum(1) < rng.random((n * k, 1, self.L))).sum(1).clip(0, self.C - 1)
        self.g_evaluations += n * k
        return sym.reshape(n, k, self.L)

    def word_env(self, num_envs: int, seed: int) -> WordEditVecEnv:
        cfg = self.cfg
        return WordEditVecEnv(num_envs, self.L, self.C, cfg.episode_steps, cfg.n_proposals, propose=self.propose,
                              score=self.potential, final_bonus=self.final_bonus, seed=seed)

    def agent_env(self, gan) -> WordEditVecEnv:
        self.gan = gan
        self.env = self.word_env(self.cfg.player.num_envs, self.cfg.seed + 3)
        return self.env

    def median_real_realism(self) -> float:
        """D's realism of the median real word among 256 fixed training words."""
        return float(np.median(self.realism(self.bar_words)))

    # -- step 2: G's plain samples and the writer's finished words, judged and archived -----------
    def sample_words(self, n: int, rng: np.random.Generator) -> list[str]:
        """G's plain samples: ``n`` words continuing the empty word."""
        return self.words_of(self.propose(np.zeros((n, self.L), np.int64), rng)[:, 0])

    def generate(self, gan, agent, rng, rnd) -> dict[str, float]:
        cfg = self.cfg
        self.realism_bar = self.median_real_realism()
        plain = self.sample_words(cfg.samples_per_round, rng)
        jp = self.judge(plain)
        self._archive(plain, jp, "generator", rnd)
        row = {"generated_realism_mean": float(jp["realism"].mean()), "generated_fluency_mean": float(jp["fluency"].mean()),
               "generated_creative_fraction": float(jp["creative"].mean()), "realism_bar": self.realism_bar}
        episodes = self.env.pop_finished()
        if episodes:
            finals = [self.words_of(e["words"][-1:])[0] for e in episodes]
            ja = self.judge(finals)
            self._archive(finals, ja, "writer", rnd)
            row.update(writer_creative_fraction=float(ja["creative"].mean()),
                       writer_realism_mean=float(ja["realism"].mean()), writer_fluency_mean=float(ja["fluency"].mean()),
                       writer_novel_fraction=float(ja["novel"].mean()))
            if self.constraint is not None:
                row["writer_constraint_fraction"] = float(ja["meets"].mean())
            on_the_way = [self.words_of(e["words"][:-1]) for e in episodes]
            self.states = (self.states + [w for ws in on_the_way for w in ws])[-4_000:]
            # D's other fakes: the writer's junk on the way (too short, or less than half the creative
            # fluency bar), not its word-like drafts: with every unfinished word as a fake, D chased the
            # writer's style (its words' realism fell from 0.34 to 0.12 over 30 rounds, their fluency with it)
            drafts = [w for ws, final in zip(on_the_way, finals) for w in ws if w != final]
            if drafts:
                junk = ~self.ref.valid(drafts) | (self.ref.fluency(drafts) < 0.5 * self.cfg.min_fluency)
                self.unfinished = (self.unfinished + [w for w, j in zip(drafts, junk) if j])[-4_000:]
            for ws, final, ok in zip(on_the_way, finals, ja["creative"]):
                if ok:
                    self.kept += [(w, final) for w in ws]
            self.kept = self.kept[-2_000:]
            self.last_episodes = episodes[-8:]
        return row

    # -- steps 3 and 5 -------------------------------------------------------------------------------
    def gan_round(self, agent, real_x) -> tuple[Any, dict[str, float]]:
        self.feedback_x = (torch.from_numpy(self.onehot(self.archive.items)).to(self.device)
                           if self.cfg.archive_feedback and len(self.archive) else None)
        return self._g_term, {"kept_pairs": float(len(self.kept))}

    def d_real_batch(self, real_x, n):
        """The corpus, with fed-back creative words (``archive_real_fraction``)
        and, under a constraint, training words that meet it (``constraint_real_fraction``)."""
        batch = mixed_real_batch(real_x, self.feedback_x, self.cfg.archive_real_fraction, n)
        k = int(round(n * self.cfg.constraint_real_fraction))
        if self.meeting_x is not None and k:
            batch[n - k:] = self.meeting_x[torch.randint(len(self.meeting_x), (k,))]
        return batch

    def other_fakes(self, n: int) -> torch.Tensor | None:
        """The writer's junk on the way, ``unfinished_fake_fraction`` of D's fakes."""
        k = int(round(n * self.cfg.unfinished_fake_fraction))
        if not k or not self.unfinished:
            return None
        pick = torch.randint(len(self.unfinished), (k,)).tolist()
        return torch.from_numpy(self.onehot([self.unfinished[i] for i in pick])).to(self.device)

    def g_condition(self, n: int, device) -> torch.Tensor:
        """Words G learns to continue: a third empty, a third prefixes of
        training words, a third the writer's words on the way (from its
        creative episodes first, where G also learns what was kept)."""
        n_empty, n_prefix = n // 3, n // 3
        n_agent = n - n_empty - n_prefix
        rng = np.random.default_rng(int(torch.randint(1 << 31, ()).item()))  # torch's stream: resumes exactly
        real = [self.split.train[i] for i in rng.integers(len(self.split.train), size=n_prefix)]
        prefixes = [w[: rng.integers(1, len(w))] if len(w) > 1 else w for w in real]
        n_kept = min(n_agent // 2, len(self.kept))
        kept = [self.kept[i] for i in rng.integers(len(self.kept), size=n_kept)] if n_kept else []
        rest = [self.states[i] for i in rng.integers(len(self.states), size=n_agent - n_kept)]
        cond_words = [""] * n_empty + prefixes + [a for a, _ in kept] + rest
        targets = [""] * (n_empty + n_prefix) + [b for _, b in kept] + [""] * len(rest)
        self._cond = torch.from_numpy(self.onehot(cond_words)).to(device)
        self._target = torch.from_numpy(self.onehot(targets)).to(device)
        self._has_target = torch.zeros(n, dtype=torch.bool, device=device)
        self._has_target[n_empty + n_prefix: n_empty + n_prefix + n_kept] = True
        return self._cond.reshape(n, -1)

    def _g_term(self, fake: torch.Tensor) -> torch.Tensor:
        """G keeps the letters of the word it continues (one minus the chance
        of the same letter, on the condition's letters) and moves toward the
        words the writer kept (the same, on every cell of those rows)."""
        letters = 1.0 - self._cond[:, 0]  # (n, 1, L): cells of the condition that hold a letter
        agree = (fake * self._cond).sum(1)
        loss = self.cfg.consistency_weight * ((1.0 - agree) * letters).sum() / letters.sum().clamp(min=1.0)
        if self.cfg.kept_weight > 0 and bool(self._has_target.any()):
            rows = self._has_target
            loss = loss + self.cfg.kept_weight * (1.0 - (fake[rows] * self._target[rows]).sum(1)).mean()
        return loss

    # -- evaluation -----------------------------------------------------------------------------------
    def write(self, policy, n: int, seed: int) -> tuple[list[str], list[dict]]:
        """``n`` words written by ``policy(obs) -> actions`` from the empty word
        on a fresh env (its own noise): (the words, each episode)."""
        before = self.g_evaluations
        env = self.word_env(n, seed)
        obs, _ = env.reset()
        done = np.zeros(n, bool)
        while not done.all():
            obs, _, term, trunc, _ = env.step(policy(obs))
            done |= term | trunc
        self.g_evaluations = before  # evaluations are not the run's G budget
        first: dict[int, dict] = {}
        for e in env.pop_finished():  # each env's first episode (an env that stopped early restarted)
            first.setdefault(e["env"], e)
        eps = [first[i] for i in range(n)]
        return [self.words_of(e["words"][-1:])[0] for e in eps], eps

    def evaluate(self, agent) -> dict[str, float]:
        words, episodes = self.write(agent.greedy_actions, self.cfg.eval_words, self.cfg.seed + 500)
        self.eval_episodes = episodes[:12]
        return self.word_figures(words)

    def word_figures(self, words: list[str], prefix: str = "text") -> dict[str, float]:
        """The evaluation figures of a list of words (the writer's or anyone's)."""
        j = self.judge(words)
        out = {f"{prefix}_creative_fraction": float(j["creative"].mean()), f"{prefix}_realism": float(j["realism"].mean()),
               f"{prefix}_fluency": float(j["fluency"].mean()), f"{prefix}_novel_fraction": float(j["novel"].mean()),
               f"{prefix}_nll": float(self.ref.train_model.nll_per_char(words).mean())}
        if self.constraint is not None:
            out[f"{prefix}_constraint_fraction"] = float(j["meets"].mean())
        return out

    # -- checkpoint -----------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict, dict]:
        st = {"archive": self.archive.state_dict(list(self.archive.items)),
              "g_evaluations": self.g_evaluations, "states": list(self.states), "realism_bar": self.realism_bar,
              "unfinished": list(self.unfinished),
              "kept": [list(k) for k in self.kept], "exact": True}
        return {}, st

    def check_state(self, weights, st, where: str) -> None:
        """Refuse (exit 2, naming the field) a state :meth:`checkpoint` of this config would not write."""
        cfg = self.cfg
        word = _Word(self.alphabet, self.L)
        validate(st, Rec({"archive": Rec({"items": Seq(word, max_len=cfg.archive_size),
                                          "records": Seq(Rec({"word": word, "realism": Float(), "fluency": Float(),
                                                               "score": Float(), "source": Str(), "round": Int(0, None)}),
                                                          max_len=cfg.archive_size),
                                          "keys": Seq(Str())}),
                          "g_evaluations": Int(0, MAX_COUNT), "states": Seq(word, max_len=4_000),
                          "realism_bar": Float(0.0, 1.0), "unfinished": Seq(word, max_len=4_000),
                          "kept": Seq(Fixed([word, word]), max_len=2_000), "exact": Bool()}),
                 f"{where} (state.json)", "domain")
        if len(st["archive"]["items"]) != len(st["archive"]["records"]) or not st["states"]:
            raise StateMismatch(f"{where} (state.json)", "domain.archive", "as many records as words (and at least "
                                "one state)", f"{len(st['archive']['items'])} words, {len(st['archive']['records'])} "
                                f"records, {len(st['states'])} states")

    def restore(self, weights, st, where: str) -> bool:
        self.check_state(weights, st, where)
        self.archive.load_state_dict(st["archive"], list(st["archive"]["items"]))
        self.g_evaluations, self.realism_bar = int(st["g_evaluations"]), float(st["realism_bar"])
        self.states, self.unfinished = list(st["states"]), list(st["unfinished"])
        self.kept = [(a, b) for a, b in st["kept"]]
        return True

    def generate_words(self, writer, n: int, seed: int) -> tuple[list[str], list[dict]]:
        """``n`` words and a metrics record each: written by ``writer`` (greedy)
        from the empty word, or, with ``writer`` None, G's plain samples."""
        if writer is None:
            words = self.sample_words(n, np.random.default_rng(seed))
        else:
            words, _ = self.write(writer.greedy_actions, n, seed)
        return words, self.records(words)

    def records(self, words: list[str]) -> list[dict]:
        """One record per word: its scores and its nearest training word."""
        j = self.judge(words)
        dist, near = nearest_words([w or "?" for w in words], self.split.train)
        nll = self.ref.train_model.nll_per_char(words)
        return [{"word": w, "realism": round(float(j["realism"][i]), 4), "fluency": round(float(j["fluency"][i]), 4),
                 "nll": round(float(nll[i]), 4), "novel": bool(j["novel"][i]), "meets_constraint": bool(j["meets"][i]),
                 "creative": bool(j["creative"][i]), "nearest": near[i], "edit_distance": int(dist[i])}
                for i, w in enumerate(words)]

    # -- outputs ----------------------------------------------------------------------------------------
    def finish(self, run_dir: Path, gan, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"creative_words": len(self.archive), "g_evaluations": self.g_evaluations}
        if status == "gan_diverged":
            return out
        rng = np.random.default_rng(self.cfg.seed + 99)
        plain = self.sample_words(self.cfg.eval_words, rng)
        out.update(self.word_figures(plain, prefix="plain_gan"))
        names = edit_action_names(self.env)
        episodes = self.eval_episodes or self.last_episodes
        sequences = [{"words": self.words_of(e["words"]), "actions": [names[a] for a in e["actions"] if a >= 0],
                      "return": e["return"]} for e in episodes]
        words_dir = run_dir / "words"
        atomic_write_text(words_dir / "archive.jsonl", "".join(json.dumps(r) + "\n" for r in
                                                              self.records_of_archive()))
        atomic_write_text(words_dir / "edits.json", json.dumps({"episodes": sequences}, indent=1))
        atomic_write_text(words_dir / "plain_gan.txt", "\n".join(plain) + "\n")
        return out

    def _archive(self, words: list[str], judged: dict[str, np.ndarray], source: str, round_: int) -> int:
        """Offer a judged batch's creative words to the archive; returns how many it took."""
        idx = np.flatnonzero(judged["creative"])
        records = [{"word": words[i], **{k: float(judged[k][i]) for k in ("realism", "fluency", "score")},
                    "source": source, "round": round_} for i in idx]
        return self.archive.add([words[i] for i in idx], [words[i] for i in idx], records)

    def records_of_archive(self) -> list[dict]:
        """The archive's records, each with its nearest training word and edit distance."""
        if not len(self.archive):
            return []
        dist, near = nearest_words(self.archive.items, self.split.train)
        return [{**r, "nearest": near[i], "edit_distance": int(dist[i])} for i, r in enumerate(self.archive.records)]


def load_text_run(run_dir: str | Path, device: str = "cpu"):
    """(the text domain with the run's G and D, its writer DQN) of a finished ``clm run --domain text``."""
    return load_domain_run(run_dir, TextConfig, device)
