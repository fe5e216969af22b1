"""The DQN's learner: the online and target Q-networks, their Adam, and the
updates that fit them to the replay's n-step TD targets.

One update: draw a batch (uniform or prioritized, with importance weights;
with demonstrations, the batch's last rows are expert transitions), compute
the targets R + gamma^k (1 - done) Q'(s', a*) (a* the target net's argmax,
or the online net's with Double DQN), the weighted Huber or squared TD loss,
plus on demonstration rows DQfD's large-margin loss (Hester et al. 2018), and
take one clipped Adam step.

Why it is fast on a CPU: the target network only changes between training
bursts (its updates are counted in env steps, as in Stable-Baselines3), so a
burst of ``gradient_steps`` updates samples all its batches at once and
evaluates the target network on all their next states in one forward pass;
on a CPU, a plain MLP Q-network acts and gets its gradients through
hand-written NumPy passes over flat parameter buffers (see networks.py), and
every network's update is one step of ``torch.optim.Adam(fused=True)``.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clm.agents.dqn.config import DQNConfig, linear_schedule
from clm.agents.dqn.parallel import DataParallel
from clm.agents.networks import NumpyMLP, QNetwork, flatten_parameters, plain_mlp_layers, split_like
from clm.agents.replay import ReplayBatch, UniformReplay
from clm.core.runtime import use_amp


class Learner:
    """The Q-networks and their updates, drawing from ``replay`` (the agent's
    experience) and ``demos`` (demonstrations, once made) with ``rng``, the
    generator it shares with the collector (one stream, in a fixed order)."""

    def __init__(self, cfg: DQNConfig, net_args: dict[str, Any], device: torch.device, parallel: DataParallel,
                 replay: UniformReplay, rng: np.random.Generator):
        self.cfg, self.device, self.parallel = cfg, device, parallel
        self.replay, self.rng = replay, rng
        self.demos: UniformReplay | None = None  # made by demo_buffer()
        torch.manual_seed(cfg.seed)
        self.q = QNetwork(**net_args).to(device)
        parallel.same_start(list(self.q.state_dict().values()))
        self.q_target = QNetwork(**net_args).to(device)
        self.q_target.load_state_dict(self.q.state_dict())
        self.q_target.requires_grad_(False)
        # On a CPU, plain MLPs act and get their gradients through hand-written
        # NumPy passes (see networks.py) and keep parameters, gradients and
        # Adam's moments in flat buffers.
        # The large-margin loss of demonstrations goes through autograd.
        self.fast: NumpyMLP | None = None
        self.amp = use_amp(cfg.amp, device)  # bf16 autocast where the device computes bf16 natively
        if plain_mlp_layers(self.q) is not None and device.type == "cpu" and not cfg.uses_demonstrations \
                and not cfg.amp:
            params = list(self.q.parameters())
            self.online = [flatten_parameters(params)]
            self._target = [flatten_parameters(list(self.q_target.parameters()))]
            self._flat_grad = torch.zeros_like(self.online[0])
            self._grad_views = [g.numpy() for g in split_like(self._flat_grad, params)]
            self.fast = NumpyMLP(plain_mlp_layers(self.q))
            self._fast_target = NumpyMLP(plain_mlp_layers(self.q_target))
        else:
            self.online, self._target = list(self.q.parameters()), list(self.q_target.parameters())
        self.target_synced_at = 0  # gradient_steps at the last hard target copy (-1: unknown)
        # Adam over the flat buffer (fast path) or the parameters, with the fused kernel:
        # one operation per tensor, and on the fast path one tensor.
        self.optimizer = torch.optim.Adam(self.online, lr=cfg.lr, fused=True)
        self.gradient_steps = 0
        self.loss_sum = torch.zeros((), device=device)  # losses of the updates since pop_mean_loss
        self.loss_count = 0

    def _autocast(self):
        """bfloat16 autocast of a forward pass when ``amp`` is on (CPU or CUDA), else nothing."""
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # -- Q-values ---------------------------------------------------------------------------
    @torch.no_grad()
    def greedy_actions(self, obs: np.ndarray) -> np.ndarray:
        if self.fast is not None:
            return self.fast.q_values(obs).argmax(axis=1)
        x = torch.as_tensor(obs, device=self.device).float()
        with self._autocast():
            return self.q(x).float().argmax(dim=1).cpu().numpy()

    @torch.no_grad()
    def target_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            return torch.from_numpy(self._fast_target.q_values(obs.numpy()))
        with self._autocast():
            return self.q_target(obs).float()

    @torch.no_grad()
    def online_q_values(self, obs: torch.Tensor) -> torch.Tensor:
        if self.fast is not None:
            return torch.from_numpy(self.fast.q_values(obs.numpy()))
        with self._autocast():
            return self.q(obs).float()

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.online)

    # -- targets and losses -----------------------------------------------------------------
    @torch.no_grad()
    def td_targets(self, b: ReplayBatch, target_next: torch.Tensor) -> torch.Tensor:
        """n-step TD targets: R + gamma^k (1 - done) Q'(s', a*), where a* is the
        target net's argmax, or the online net's with Double DQN."""
        if self.cfg.double_dqn:
            online = self.online_q_values(b.next_obs)
            best = online.argmax(dim=1, keepdim=True)
            value = target_next.gather(1, best).squeeze(1)
        else:
            value = target_next.max(dim=1).values
        return b.returns + b.discounts * value

    def td_gradients(self, obs, actions, target, weights, n_demo: int = 0) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Gradients of the weighted TD loss for every online parameter, and
        the TD errors Q(s, a) - target. The last ``n_demo`` rows are
        demonstrations: they add DQfD's large-margin loss, max_a [Q(s, a) +
        margin * (a != a_E)] - Q(s, a_E), weighted by ``demo_loss_weight``."""
        if self.fast is not None:
            td = self.fast.td_gradients(obs.numpy(), actions.numpy(), target.numpy(), weights.numpy(),
                                        out=self._grad_views, huber=self.cfg.loss == "huber")
            return [self._flat_grad], torch.from_numpy(td)
        with self._autocast():
            q_all = self.q(obs).float()  # the loss in float32: bf16's 8-bit mantissa would round TD errors away
        q = q_all.gather(1, actions[:, None]).squeeze(1)
        td = q - target
        loss = (weights * self.per_item_loss(td)).mean()
        if n_demo:
            loss = loss + self.cfg.demo_loss_weight * self.margin_loss(q_all[-n_demo:], actions[-n_demo:])
        return list(torch.autograd.grad(loss, self.online)), td.detach()

    def margin_loss(self, q: torch.Tensor, expert_actions: torch.Tensor) -> torch.Tensor:
        """DQfD's supervised loss, averaged over rows: how far the best
        margin-raised Q-value lies above the expert action's Q-value (0 once
        the expert's action leads every other action by the margin)."""
        margins = torch.full_like(q, self.cfg.demo_margin)
        margins.scatter_(1, expert_actions[:, None], 0.0)
        return ((q + margins).max(dim=1).values - q.gather(1, expert_actions[:, None]).squeeze(1)).mean()

    def per_item_loss(self, td: torch.Tensor) -> torch.Tensor:
        if self.cfg.loss == "huber":
            return F.smooth_l1_loss(td, torch.zeros_like(td), reduction="none")
        return td.pow(2)

    @torch.no_grad()
    def _record_losses(self, td: torch.Tensor, weights: torch.Tensor) -> None:
        """Add the losses of updates whose TD errors are the rows of ``td``
        (one row per update) to the logged running mean."""
        self.loss_sum += (weights * self.per_item_loss(td)).mean(dim=-1).sum()
        self.loss_count += td.shape[0] if td.dim() == 2 else 1

    def pop_mean_loss(self) -> float | None:
        """The mean loss of the updates since the last call (None: none).
        Data-parallel, over every rank's rows (a collective: the ranks call it
        at the same points, the training loop's log rows and the CLM's
        rounds), so that the figure is the global batch's, as one process
        logs it."""
        loss_sum, count = self.parallel.mean_loss(float(self.loss_sum), self.loss_count)
        if count == 0:
            return None
        value = loss_sum / count
        self.loss_sum.zero_()
        self.loss_count = 0
        return value

    # -- updates ----------------------------------------------------------------------------
    @torch.no_grad()
    def apply(self, grads: list[torch.Tensor]) -> None:
        """One Adam step with ``grads``, the same maths as ``loss.backward()``,
        ``clip_grad_norm_`` and ``Adam.step()``. Gradients come in as a list
        (on the fast path one flat tensor, from the NumPy pass) and go to the
        optimizer's fused kernel; clipping scales them in place, which on a
        CPU reads the norm without a device sync. Data-parallel, they are
        first averaged over the ranks, so the clipping sees the global
        batch's gradient norm."""
        self.parallel.average_gradients(grads)
        max_norm = self.cfg.max_grad_norm
        if max_norm > 0:
            norm = grads[0].norm() if len(grads) == 1 else torch.linalg.vector_norm(
                torch.stack([g.norm() for g in grads]))
            if self.device.type == "cpu":
                if float(norm) + 1e-6 > max_norm:
                    scale = max_norm / (float(norm) + 1e-6)
                    for g in grads:
                        g.mul_(scale)
            else:
                scale = (max_norm / (norm + 1e-6)).clamp_(max=1.0)
                for g in grads:
                    g.mul_(scale)
        for p, g in zip(self.online, grads):
            p.grad = g
        self.optimizer.step()
        self.gradient_steps += 1

    @torch.no_grad()
    def update_target(self) -> None:
        if self.cfg.tau >= 1.0:
            # A hard copy is a no-op until the online net has changed (between
            # bursts most of the interval's ticks find nothing new to copy).
            if self.target_synced_at == self.gradient_steps:
                return
            self.target_synced_at = self.gradient_steps
            for t, o in zip(self._target, self.online):
                t.copy_(o)
        else:
            for t, o in zip(self._target, self.online):
                t.lerp_(o, self.cfg.tau)

    def train_burst(self, n_updates: int, env_steps: int, demo_only: bool = False) -> None:
        """``n_updates`` gradient steps with the target network held fixed
        (``env_steps``: where training stands, for the importance weights'
        schedule). With demonstrations, the last rows of every batch are
        demonstrations (all rows with ``demo_only``)."""
        c = self.cfg
        n_demo = c.batch_size if demo_only else self.demo_rows()
        n_agent = c.batch_size - n_demo
        # Data-parallel: this rank computes n_agent / N agent rows and n_demo / N demonstration rows of
        # every update (drawn from its own replay, or sliced from the global draw when replicated).
        (a_rows, d_rows), (draw_agent, draw_demo) = self.parallel.rows(n_agent, n_demo)
        B = a_rows + d_rows
        if c.prioritized and n_agent:
            beta = linear_schedule(c.per_beta, 1.0, c.total_steps, env_steps)
            for _ in range(n_updates):  # priorities change after each step: sample one by one
                b = self.sample_burst(1, draw_agent, draw_demo, beta)
                target = self.td_targets(b, self.target_q_values(b.next_obs))
                grads, td = self.td_gradients(b.obs, b.actions, target, b.weights, d_rows)
                self.apply(grads)
                self._record_losses(td, b.weights)
                idx, td = self.parallel.priority_rows(b.indices[:a_rows], td[:a_rows])
                self.replay.update_priorities(idx, td.cpu().numpy())
            return
        # Uniform replay: every batch of the burst in one draw, the fixed target
        # net on all their next states in one forward pass.
        burst = self.sample_burst(n_updates, draw_agent, draw_demo, None)
        target_next = self.target_q_values(burst.next_obs)
        targets = None if c.double_dqn else self.td_targets(burst, target_next)
        tds = torch.empty(n_updates, B, device=self.device)
        for i in range(n_updates):
            s = slice(i * B, (i + 1) * B)
            b = burst.slice(s)
            # Double DQN's argmax needs the online net as it is at this step.
            target = targets[s] if targets is not None else self.td_targets(b, target_next[s])
            grads, tds[i] = self.td_gradients(b.obs, b.actions, target, b.weights, d_rows)
            self.apply(grads)
        self._record_losses(tds, burst.weights.view(n_updates, B))

    # -- batches ----------------------------------------------------------------------------
    def demo_buffer(self, obs_shape: tuple[int, ...], obs_dtype) -> UniformReplay:
        """The demonstrations' one-column replay, made on first use."""
        if self.demos is None:
            self.demos = UniformReplay(self.cfg.demo_buffer_size, 1, obs_shape, obs_dtype=obs_dtype,
                                       n_step=self.cfg.n_step, gamma=self.cfg.gamma, device=self.device)
        return self.demos

    def demo_rows(self) -> int:
        """Demonstration rows per batch (0 until demonstrations are added)."""
        if self.demos is None or len(self.demos) == 0 or self.cfg.demo_fraction <= 0:
            return 0
        return max(1, int(round(self.cfg.batch_size * self.cfg.demo_fraction)))

    def sample_burst(self, n_updates: int, n_agent: int, n_demo: int, beta: float | None) -> ReplayBatch:
        """``n_updates`` batches laid end to end, each ``n_agent`` rows of the
        agent's replay followed by ``n_demo`` rows of demonstrations."""
        return self.draw_burst(n_updates, n_agent, n_demo, beta)

    def draw_burst(self, n_updates: int, n_agent: int, n_demo: int, beta: float | None) -> ReplayBatch:
        """The rows of :meth:`sample_burst`, as drawn. Replicated
        data-parallel: the rows are drawn for the global batch (the
        importance weights normalised over it) and this rank keeps its
        ``1 / N`` of each part of each batch."""
        parts = []
        mine = self.parallel.mine
        if n_agent:
            idx = self.replay.sample_indices(n_updates * n_agent, self.rng)
            weights = self.replay.importance_weights(idx, beta) if beta is not None else None
            keep = mine(n_updates, n_agent)
            parts.append(self.replay.gather(idx[keep], None if weights is None else weights[keep]))
        if n_demo:
            idx = self.demos.sample_indices(n_updates * n_demo, self.rng)
            parts.append(self.demos.gather(idx[mine(n_updates, n_demo)]))
        if len(parts) == 1:
            return parts[0]
        if self.parallel.replicated:
            n_agent, n_demo = n_agent // self.parallel.world, n_demo // self.parallel.world
        a, d = parts
        per = lambda x, k: x.reshape(n_updates, k, *x.shape[1:])  # noqa: E731
        cat = lambda x, y: torch.cat([per(x, n_agent), per(y, n_demo)], 1).reshape(-1, *x.shape[1:])  # noqa: E731
        idx = np.concatenate([a.indices.reshape(n_updates, n_agent), np.full((n_updates, n_demo), -1)], 1).reshape(-1)
        return ReplayBatch(cat(a.obs, d.obs), cat(a.actions, d.actions), cat(a.returns, d.returns),
                           cat(a.next_obs, d.next_obs), cat(a.discounts, d.discounts),
                           cat(a.weights, d.weights), idx)
