"""The CLM on art: a painter DQN works on a canvas, G proposes fragments of
the work from the current canvas, D judges how real the work is (the seed's
section 6.2).

One implementation of :class:`clm.engine.domain.CLMDomain`, on handwritten
digits (scikit-learn's set, resized to the canvas; MNIST by IDX path):

- **agent -> G**: the painter's canvas is G's condition: at every step G
  proposes ``n_proposals`` full canvases that continue what is painted, and
  the painter pastes a window of one of them or makes a brush stroke
  (:class:`clm.domains.images.canvas.CanvasVecEnv`).
- **D -> agent**: the reward is the change in D's realism of the canvas; at
  the end of an episode it adds recognisability (the digits classifier's
  confidence) and novelty (distance to the nearest training image).
- **agent -> G**: G learns, besides D's feedback, to continue canvases
  consistently (its proposal keeps what is painted) and to propose what the
  painter kept in its creative canvases.
- **creative -> D**: the best creative canvases (realistic, recognisable,
  novel, not memorised) join D's real data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clm.agents.state_check import MAX_COUNT
from clm.art_clm.config import ArtConfig
from clm.core.rundir import atomic_write_text
from clm.core.state_schema import (
    Arr,
    Bool,
    Bytes,
    Float,
    Int,
    Opt,
    Rec,
    Seq,
    StateMismatch,
    Str,
    validate,
)
from clm.domains.images.art_pictures import write_art_pictures
from clm.domains.images.canvas import CanvasVecEnv
from clm.domains.images.digits import load_image_data, resize_split
from clm.engine.archive import ScoredArchive
from clm.engine.domain import ProposalDomain
from clm.engine.parts import mixed_real_batch
from clm.engine.runs import load_domain_run
from clm.gan import metrics
from clm.gan.models import ImageDiscriminator, ImageGenerator


def canvas_key(canvas: np.ndarray) -> bytes:
    """A canvas's identity in the archive: its pixels to 3 decimals (-0.0 made 0.0), so a canvas
    within rounding of an archived one is not news."""
    return (np.round(np.asarray(canvas, np.float32), 3) + 0.0).tobytes()


class ArtCLM(ProposalDomain):
    """The CLM's art domain (``clm run --domain art``)."""

    name = "art"
    evaluation_keys = ("canvas_creative_fraction", "canvas_realism", "canvas_recognisable_fraction",
                       "canvas_novelty_mean", "canvas_fd_clf_ratio", "canvas_coverage")

    def __init__(self, cfg: ArtConfig, device: torch.device, run_dir: Path | None = None):
        self.cfg, self.device, self.run_dir = cfg, device, run_dir
        split = resize_split(load_image_data(cfg.data, 0.25, 0), cfg.canvas_size)
        self.train_x, self.split = split.train_x.to(device), split
        cache = None if run_dir is None else Path(run_dir) / "classifier"
        # The recogniser and FD-clf's feature space: one classifier trained on the training split (cached in
        # the run folder, so a resumed run judges with the same one).
        self.ref = metrics.build_reference(split.train_x, split.train_y, split.test_x, split.test_y, split.n_classes,
                                           cache, f"{split.name}-{cfg.canvas_size}px", 20, seed=0,
                                           n_eval=cfg.eval_canvases)
        self.flat_train = split.train_x.reshape(len(split.train_x), -1).numpy()
        train_features, _ = metrics.classifier_outputs(self.ref.classifier, split.train_x)
        self.manifold = metrics.RealManifold(train_features, k=5)
        # novelty's unit: the median held-out image's distance to its nearest training image
        self.novelty_scale = float(np.median(metrics.nearest_distances(split.test_x.reshape(len(split.test_x), -1).numpy(),
                                                                       self.flat_train)))
        self.archive = ScoredArchive(cfg.archive_size)
        self.realism_bar = 0.5
        self.g_evaluations = 0
        self.kept: list[tuple[np.ndarray, np.ndarray]] = []  # (a canvas on the way, the creative canvas it became)
        self.states = np.full((1, 1, cfg.canvas_size, cfg.canvas_size), -1.0, np.float32)  # the painter's canvases
        self.feedback_x: torch.Tensor | None = None
        self.last_strips: list[np.ndarray] = []

    # -- judging ----------------------------------------------------------------------------------
    @torch.no_grad()
    def realism(self, x: np.ndarray) -> np.ndarray:
        """D's probability that each canvas is real."""
        logits, _ = self.gan.D(torch.as_tensor(x, dtype=torch.float32, device=self.device))
        return torch.sigmoid(logits.float()).cpu().numpy()

    @torch.no_grad()
    def judge(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Realism (D), the classifier's confidence and class, whether the
        canvas lies on the real digits' manifold (per-sample precision in the
        classifier's feature space: a confident classifier alone is fooled by
        noise), novelty (nearest training image, in units of the held-out
        median), memorised, the score and creative."""
        x = np.asarray(x, np.float32)
        real = self.realism(x)
        feats, _ = metrics.classifier_outputs(self.ref.classifier, torch.from_numpy(x))
        probs = torch.softmax(self.ref.classifier.head(torch.from_numpy(feats).float()), 1)
        conf, label = probs.max(1)
        conf, label = conf.numpy().astype(np.float64), label.numpy()
        on_manifold = self.manifold.contains(feats)
        dist = metrics.nearest_distances(x.reshape(len(x), -1), self.flat_train)
        memorised = dist < self.ref.memorised_threshold
        if len(self.archive):  # novel also to the archive: the same canvas again is not news (as for levels)
            dist = np.minimum(dist, metrics.nearest_distances(x.reshape(len(x), -1),
                                                              self.archive_canvases().reshape(len(self.archive), -1)))
        nov = dist / self.novelty_scale
        # recognisability and novelty count only for a canvas D finds real enough: the creative criteria
        # in the order a viewer applies them (a recognisable but unreal canvas is not a work)
        recognisable = conf * on_manifold * (real >= self.realism_bar)
        score = real + self.cfg.recognisable_weight * recognisable + \
            self.cfg.novelty_weight * recognisable * np.minimum(nov, 1.0) * ~memorised
        creative = (real >= self.realism_bar) & on_manifold & (conf >= self.cfg.min_confidence) & ~memorised
        return {"realism": real, "confidence": conf, "label": label, "on_manifold": on_manifold, "novelty": nov,
                "score": score, "creative": creative, "memorised": memorised}

    def final_bonus(self, x: np.ndarray) -> np.ndarray:
        j = self.judge(x)
        return j["score"] - j["realism"]

    # -- step 1 ----------------------------------------------------------------------------------
    def real_data(self) -> torch.Tensor:
        return self.train_x

    def build_gan(self, shape, device):
        g, s = self.cfg.gan, self.cfg.canvas_size
        G = ImageGenerator(shape, g.z_dim, g.g_width, s * s, "mlp").to(device)
        D = ImageDiscriminator(shape, g.d_width, 0, "mlp", g.spectral_norm, False).to(device)
        return G, D

    def propose(self, canvases: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """G's ``n_proposals`` continuations of each canvas, with noise from the env's generator."""
        n, k, s = len(canvases), self.cfg.n_proposals, self.cfg.canvas_size
        z = torch.from_numpy(rng.standard_normal((n * k, self.cfg.gan.z_dim)).astype(np.float32)).to(self.device)
        cond = torch.from_numpy(np.repeat(canvases.reshape(n, s * s), k, axis=0)).to(self.device)
        with torch.no_grad():
            x = self.gan.sampler(z, cond).float().cpu().numpy()
        self.g_evaluations += n * k
        return x.reshape(n, k, 1, s, s)

    def canvas_env(self, num_envs: int, seed: int, fragments: bool | None = None) -> CanvasVecEnv:
        cfg = self.cfg
        fragments = cfg.fragments if fragments is None else fragments
        return CanvasVecEnv(num_envs, cfg.canvas_size, cfg.episode_steps, cfg.n_proposals, cfg.window, cfg.stride,
                            fragments, cfg.strokes, propose=self.propose,
                            realism=lambda x: cfg.realism_weight * self.realism(x),
                            final_bonus=self.final_bonus, seed=seed, whole=cfg.whole_proposals and fragments,
                            keep=cfg.keep_action)

    def agent_env(self, gan) -> CanvasVecEnv:
        self.gan = gan
        self.env = self.canvas_env(self.cfg.player.num_envs, self.cfg.seed + 3)
        return self.env

    def median_real_realism(self) -> float:
        """D's realism of the median real digit among the first 256 training images (a fixed set)."""
        return float(np.median(self.realism(self.split.train_x[:256].numpy())))

    # -- step 2: G's plain samples and the painter's finished canvases, judged and archived ----------
    def generate(self, gan, agent, rng, rnd) -> dict[str, float]:
        cfg, s = self.cfg, self.cfg.canvas_size
        self.realism_bar = float(np.median(self.realism(self.split.train_x[rng.choice(len(self.split.train_x), 128)].numpy())))
        blank = np.full((cfg.samples_per_round, 1, s, s), -1.0, np.float32)
        plain = self.propose(blank, rng)[:, 0]
        jp = self.judge(plain)
        self._archive(plain, jp, "generator", rnd)
        row = {"generated_realism_mean": float(jp["realism"].mean()),
               "generated_creative_fraction": float(jp["creative"].mean()), "realism_bar": self.realism_bar}
        episodes = self.env.pop_finished()
        if episodes:
            finals = np.stack([e["canvases"][-1] for e in episodes])[:, None]
            ja = self.judge(finals)
            self._archive(finals, ja, "painter", rnd)
            row.update(painter_creative_fraction=float(ja["creative"].mean()),
                       painter_realism_mean=float(ja["realism"].mean()),
                       painter_confidence_mean=float(ja["confidence"].mean()))
            # unfinished canvases for D's fakes and G's conditions: the first half of each episode, less any
            # canvas already equal to the finished work (a painter that takes a proposal and keeps it would
            # otherwise have its finished works judged as unfinished, and D would chase its style again)
            states = np.concatenate([[c for c in e["canvases"][: max(1, cfg.episode_steps // 2)]
                                      if np.abs(c - e["canvases"][-1]).max() > 1e-6] or [e["canvases"][0]]
                                     for e in episodes])[:, None]
            self.states = np.concatenate([self.states, states])[-4_000:]
            for e, ok in zip(episodes, ja["creative"]):
                if ok:  # what the painter kept: each canvas on the way, and the creative canvas it became
                    self.kept += [(c[None], e["canvases"][-1][None]) for c in e["canvases"][:-1]]
            self.kept = self.kept[-2_000:]
            self.last_strips = [e["canvases"] for e in episodes[-8:]]
        return row

    # -- steps 3 and 5 ------------------------------------------------------------------------------
    def gan_round(self, agent, real_x) -> tuple[Any, dict[str, float]]:
        cfg = self.cfg
        self.feedback_x = (torch.from_numpy(self.archive_canvases()).to(self.device)
                           if cfg.archive_feedback and len(self.archive) else None)
        return self._g_term, {"kept_pairs": float(len(self.kept))}

    def d_real_batch(self, real_x, n):
        return mixed_real_batch(real_x, self.feedback_x, self.cfg.archive_real_fraction, n)

    def other_fakes(self, n: int) -> torch.Tensor | None:
        """The painter's unfinished canvases (``unfinished_fake_fraction`` of D's fakes)."""
        k = int(round(n * self.cfg.unfinished_fake_fraction))
        if not k:
            return None
        return torch.from_numpy(self.states[torch.randint(len(self.states), (k,)).numpy()]).to(self.device)

    def g_condition(self, n: int, device) -> torch.Tensor:
        """Canvases G learns to continue: a third blank, a third real digits
        with random windows kept, a third the painter's own canvases (from its
        creative episodes first, where G also learns what was kept)."""
        s, cfg = self.cfg.canvas_size, self.cfg
        n_blank, n_part = n // 3, n // 3
        n_agent = n - n_blank - n_part
        cond = torch.full((n, 1, s, s), -1.0)
        real = self.split.train_x[torch.randint(len(self.split.train_x), (n_part,))]
        keep = torch.rand(n_part, 1, s // cfg.stride, s // cfg.stride) < 0.5
        mask = torch.nn.functional.interpolate(keep.float(), size=(s, s), mode="nearest").bool()
        cond[n_blank:n_blank + n_part] = torch.where(mask, real, torch.tensor(-1.0))
        target = torch.zeros(n, 1, s, s)
        has_target = torch.zeros(n, dtype=torch.bool)
        n_kept = min(n_agent // 2, len(self.kept))
        if n_kept:
            idx = torch.randint(len(self.kept), (n_kept,)).tolist()
            rows = slice(n_blank + n_part, n_blank + n_part + n_kept)
            cond[rows] = torch.from_numpy(np.concatenate([self.kept[i][0] for i in idx]))[:, None]
            target[rows] = torch.from_numpy(np.concatenate([self.kept[i][1] for i in idx]))[:, None]
            has_target[rows] = True
        rest = n_agent - n_kept
        if rest:
            cond[n - rest:] = torch.from_numpy(self.states[torch.randint(len(self.states), (rest,)).numpy()])
        self._cond, self._target, self._has_target = cond.to(device), target.to(device), has_target.to(device)
        return self._cond.reshape(n, s * s)

    def _g_term(self, fake: torch.Tensor) -> torch.Tensor:
        """G keeps what is painted on its condition (an L1 on the painted
        pixels) and moves toward what the painter kept (an L1 to the creative
        final canvas, on the rows that came from the painter's creative episodes)."""
        painted = (self._cond > -0.99).float()
        loss = self.cfg.consistency_weight * ((fake - self._cond).abs() * painted).sum() / painted.sum().clamp(min=1.0)
        if self.cfg.kept_weight > 0 and bool(self._has_target.any()):
            rows = self._has_target
            loss = loss + self.cfg.kept_weight * (fake[rows] - self._target[rows]).abs().mean()
        return loss

    # -- evaluation ---------------------------------------------------------------------------------
    def paint(self, policy, n: int, seed: int, fragments: bool | None = None) -> tuple[np.ndarray, list[np.ndarray]]:
        """``n`` canvases painted by ``policy(obs) -> actions`` from blank, on
        a fresh env (its own noise): (final canvases (n, 1, S, S), each episode's strip)."""
        before = self.g_evaluations
        env = self.canvas_env(n, seed, fragments)
        obs, _ = env.reset()
        for _ in range(self.cfg.episode_steps):
            obs, _, _, _, infos = env.step(policy(obs))
        self.g_evaluations = before  # evaluations are not the run's G budget
        eps = env.pop_finished()
        return np.stack([e["canvases"][-1] for e in eps])[:, None], [e["canvases"] for e in eps]

    def evaluate(self, agent) -> dict[str, float]:
        finals, strips = self.paint(agent.greedy_actions, self.cfg.eval_canvases, self.cfg.seed + 500)
        self.eval_strips = strips[:8]
        return self.canvas_figures(finals)

    def canvas_figures(self, finals: np.ndarray, prefix: str = "canvas") -> dict[str, float]:
        """The evaluation figures of a batch of canvases (the painter's or anyone's)."""
        j = self.judge(finals)
        m = metrics.evaluate_samples(finals, self.ref, class_balance=False, novelty=False)
        return {f"{prefix}_creative_fraction": float(j["creative"].mean()),
                f"{prefix}_realism": float(j["realism"].mean()),
                f"{prefix}_recognisable_fraction": float(((j["confidence"] >= self.cfg.min_confidence)
                                                           & j["on_manifold"]).mean()),
                f"{prefix}_novelty_mean": float(j["novelty"].mean()),
                f"{prefix}_fd_clf_ratio": float(m["fd_clf_ratio"]), f"{prefix}_coverage": float(m["coverage"])}

    # -- the archive ----------------------------------------------------------------------------------
    def _archive(self, canvases: np.ndarray, judged: dict[str, np.ndarray], source: str, round_: int) -> int:
        """Offer a judged batch's creative canvases to the archive; returns how many it took."""
        idx = np.flatnonzero(judged["creative"])
        records = [{k: float(judged[k][i]) for k in ("realism", "confidence", "novelty", "score")}
                   | {"label": int(judged["label"][i]), "source": source, "round": round_} for i in idx]
        return self.archive.add([canvases[i] for i in idx], [canvas_key(canvases[i]) for i in idx], records)

    def archive_canvases(self) -> np.ndarray:
        """(N, 1, H, W) the archived canvases."""
        size = self.cfg.canvas_size
        return np.stack(self.archive.items) if len(self.archive) else np.zeros((0, 1, size, size), np.float32)

    # -- checkpoint ---------------------------------------------------------------------------------
    def checkpoint(self) -> tuple[dict, dict]:
        st = {"archive": self.archive.state_dict(self.archive_canvases()),
              "g_evaluations": self.g_evaluations, "states": self.states, "realism_bar": self.realism_bar,
              "kept_from": np.concatenate([k[0] for k in self.kept]) if self.kept else None,
              "kept_to": np.concatenate([k[1] for k in self.kept]) if self.kept else None,
              "exact": True}
        return {}, st

    def check_state(self, weights, st, where: str) -> None:
        """Refuse (exit 2, naming the field) a state :meth:`checkpoint` of this config would not write."""
        s, cfg = self.cfg.canvas_size, self.cfg
        canvases = Arr(np.dtype(np.float32), (None, 1, s, s), values=(-1.0, 1.0))
        validate(st, Rec({"archive": Rec({"items": Arr(np.dtype(np.float32), (None, 1, s, s), max_rows=cfg.archive_size),
                                          "records": Seq(Rec({**dict.fromkeys(("realism", "confidence", "novelty", "score"), Float()),
                                                               "label": Int(0, None), "source": Str(),
                                                               "round": Int(0, None)}), max_len=cfg.archive_size),
                                          "keys": Seq(Bytes())}),
                          "g_evaluations": Int(0, MAX_COUNT), "states": canvases,
                          "realism_bar": Float(0.0, 1.0), "kept_from": Opt(canvases), "kept_to": Opt(canvases),
                          "exact": Bool()}), f"{where} (state.json)", "domain")
        if len(st["archive"]["items"]) != len(st["archive"]["records"]) or len(st["states"]) < 1 \
                or (st["kept_from"] is None) != (st["kept_to"] is None) \
                or (st["kept_from"] is not None and len(st["kept_from"]) != len(st["kept_to"])):
            raise StateMismatch(f"{where} (state.json)", "domain", "as many archive records as canvases, at least one "
                                "state, and as many kept_to as kept_from canvases", "other counts")

    def restore(self, weights, st, where: str) -> bool:
        self.check_state(weights, st, where)
        self.archive.load_state_dict(st["archive"], list(np.asarray(st["archive"]["items"], np.float32)))
        self.g_evaluations, self.realism_bar = int(st["g_evaluations"]), float(st["realism_bar"])
        self.states = np.asarray(st["states"], np.float32)
        self.kept = [] if st["kept_from"] is None else [(a[None], b[None]) for a, b in zip(st["kept_from"], st["kept_to"])]
        return True

    def generate_canvases(self, painter, n: int, seed: int) -> tuple[np.ndarray, list[dict]]:
        """``n`` canvases and their metrics: painted by ``painter`` (greedy) from
        blank, or, with ``painter`` None, G's plain samples from a blank canvas."""
        s = self.cfg.canvas_size
        if painter is None:
            canvases = self.propose(np.full((n, 1, s, s), -1.0, np.float32), np.random.default_rng(seed))[:, 0]
        else:
            canvases, _ = self.paint(painter.greedy_actions, n, seed)
        return canvases, _records(self.judge(canvases), self.cfg.min_confidence)

    # -- outputs --------------------------------------------------------------------------------------
    def finish(self, run_dir: Path, gan, status: str) -> dict[str, Any]:
        out: dict[str, Any] = {"creative_canvases": len(self.archive), "g_evaluations": self.g_evaluations}
        if status == "gan_diverged":
            return out
        s = self.cfg.canvas_size
        rng = np.random.default_rng(self.cfg.seed + 99)
        plain = self.propose(np.full((self.cfg.eval_canvases, 1, s, s), -1.0, np.float32), rng)[:, 0]
        out.update(self.canvas_figures(plain, prefix="plain_gan"))
        strips = getattr(self, "eval_strips", None) or self.last_strips
        nearest = None
        if len(self.archive):
            d = np.stack([np.linalg.norm(self.flat_train - c.reshape(1, -1), axis=1) for c in self.archive.items])
            nearest = self.split.train_x.numpy()[d.argmin(1)]
        write_art_pictures(run_dir / "pictures", strips, self.archive_canvases() if len(self.archive) else None,
                           nearest, plain, self.split.train_x[:64].numpy())
        atomic_write_text(run_dir / "pictures" / "archive.jsonl",
                          "".join(json.dumps(r) + "\n" for r in self.archive.records))
        return out


def _records(judged: dict[str, np.ndarray], min_confidence: float) -> list[dict]:
    return [{"realism": float(judged["realism"][i]), "label": int(judged["label"][i]),
             "confidence": float(judged["confidence"][i]), "on_manifold": bool(judged["on_manifold"][i]),
             "novelty": float(judged["novelty"][i]),
             "recognisable": bool(judged["confidence"][i] >= min_confidence),
             "memorised": bool(judged["memorised"][i]), "creative": bool(judged["creative"][i])}
            for i in range(len(judged["realism"]))]


def load_art_run(run_dir: str | Path, device: str = "cpu"):
    """(the art domain with the run's G and D, its painter DQN) of a finished ``clm run --domain art``."""
    return load_domain_run(run_dir, ArtConfig, device)
