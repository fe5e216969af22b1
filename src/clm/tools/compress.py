"""Smaller networks of a levels run, measured: magnitude pruning and dynamic
int8 quantisation of the player's Q-network and of G.

- **Pruning**: global L1 unstructured pruning (``torch.nn.utils.prune``)
  over the weights of every Linear and Conv2d layer of a network at once,
  so that the smallest |w| of the whole network go first (a per-layer cut
  would take as many from a small, important layer as from a large one);
  then made permanent (``prune.remove``), leaving plain tensors with zeros.
- **Dynamic int8 quantisation**: ``torch.ao.quantization.quantize_dynamic``
  on the Linear layers: int8 weights (per-tensor symmetric scale), the
  activations quantised on the fly per batch; Conv2d and BatchNorm stay
  fp32 (dynamic quantisation has no conv kernels). torch 2.13 marks
  ``torch.ao.quantization`` deprecated in favour of torchao's ``quantize_``
  (a separate package, not a dependency of clm); it is public, works on the
  CPU and is what this module uses.

Storage (safetensors, no pickle): a pruned weight is stored as a bit mask
of its non-zeros (``np.packbits``) and the non-zero values, so pruning
shrinks the file; an int8 Linear weight as its int8 values, scale and zero
point. A quantised network is rebuilt at load time: the fp32 architecture
from the run's config, quantised by the same call, and then each int8
layer's packed weight is set from the stored int8 values, scale and zero
point (``quantize_per_tensor`` of the exactly representable dequantised
values gives back the same integers), so the loaded network computes what
the saved one did.

Measured, before and after: the file size, CPU inference time of a batch
(one thread, median of repeats), and quality: the player's held-out solve
rate (the run's own evaluation, ``player_solve_rate`` on its held-out
levels) and G's decoded levels' tile-pattern KL to the corpus and solvable
fraction (solved by the exact solver with at least one push, as the judge
counts playable levels).
"""

from __future__ import annotations

import copy
import json
import statistics
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load, save
from torch import nn
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
from torch.ao.quantization import quantize_dynamic
from torch.nn.utils import prune

from clm.core.errors import UserError
from clm.core.rundir import (
    atomic_write_bytes,
    atomic_write_text,
    check_output_folder,
    folder_written_whole,
)
from clm.domains.levels import levels_to_onehot
from clm.domains.levels.metrics import tile_pattern_kl
from clm.domains.levels.solver import solve_level
from clm.levels_clm.couplings import player_solve_rate
from clm.levels_clm.designer import decode_latents
from clm.levels_clm.search import load_run
from clm.tools.explain import run_domain

#: the marker file of a compressed folder (``clm compress`` replaces only folders that hold it)
MARKER = "compression.json"
FORMAT_VERSION = 1
NETWORKS = ("player", "generator")
PRUNABLE = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class CompressionSpec:
    """What to do to each network: prune this fraction of its Linear/Conv weights, then quantise or not."""

    prune: float = 0.0  #: fraction of the Linear and Conv2d weights set to 0, in [0, 1)
    quantize: str = ""  #: "" (fp32) or "int8" (dynamic, Linear layers)

    def __post_init__(self):
        if not (0.0 <= self.prune < 1.0):  # also refuses NaN
            raise UserError(f"--prune must lie in [0, 1) (the fraction of weights set to zero), got {self.prune}",
                            exit_code=2)
        if self.quantize not in ("", "int8"):
            raise UserError(f"--quantize takes int8, got {self.quantize!r}", exit_code=2)

    @property
    def label(self) -> str:
        return f"prune{self.prune:g}-{self.quantize or 'fp32'}"


# -- the two compressions --------------------------------------------------------------------------------
def prunable_weights(net: nn.Module) -> list[tuple[nn.Module, str]]:
    """(module, "weight") of every Linear and Conv2d layer of ``net``."""
    return [(m, "weight") for m in net.modules() if isinstance(m, PRUNABLE)]


def prune_global(net: nn.Module, fraction: float) -> nn.Module:
    """A copy of ``net`` with the ``fraction`` of smallest-|w| weights over
    all its Linear and Conv2d layers set to zero (``round(fraction * N)`` of
    the N weights), permanently: no masks or hooks remain."""
    net = copy.deepcopy(net)
    if fraction <= 0:
        return net
    params = prunable_weights(net)
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=float(fraction))
    for module, name in params:
        prune.remove(module, name)
    return net


@contextmanager
def _quiet_deprecation():
    """torch 2.13 warns on every quantisation call that torch.ao.quantization
    is deprecated (see the module's doc); it is said once in the docs instead."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.ao\.quantization.*")
        warnings.filterwarnings("ignore", category=UserWarning, message=r".*quantize_per_tensor.*deprecated.*")
        yield


def quantize_int8(net: nn.Module) -> nn.Module:
    """A copy of ``net`` with its Linear layers dynamically quantised to int8 (CPU)."""
    with _quiet_deprecation():
        return quantize_dynamic(copy.deepcopy(net).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def compress(net: nn.Module, spec: CompressionSpec) -> nn.Module:
    """``net`` pruned, then quantised, as ``spec`` says (a new module, eval mode)."""
    out = prune_global(net, spec.prune).eval()
    return quantize_int8(out) if spec.quantize == "int8" else out


def _int8_layers(net: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in net.named_modules() if isinstance(m, DynamicLinear)}


# -- storage: safetensors, pruned weights sparse, int8 weights as integers ------------------------------
def _pack(name: str, w: torch.Tensor, sparse: bool, out: dict[str, torch.Tensor]) -> None:
    """``w`` under ``name``: dense, or (with ``sparse``) a bit mask of its non-zeros and their values."""
    if not sparse:
        out[name] = w.contiguous()
        return
    nonzero = (w != 0).reshape(-1).numpy()
    out[f"{name}.mask"] = torch.from_numpy(np.packbits(nonzero))
    out[f"{name}.values"] = w.reshape(-1)[torch.from_numpy(nonzero)].contiguous()


def _unpack(name: str, shape: tuple[int, ...], tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    if name in tensors:
        return tensors[name]
    numel = int(np.prod(shape))
    nonzero = torch.from_numpy(np.unpackbits(tensors[f"{name}.mask"].numpy(), count=numel).astype(bool))
    values = tensors[f"{name}.values"]
    dense = torch.zeros(numel, dtype=values.dtype)
    dense[nonzero] = values
    return dense.reshape(shape)


def to_tensors(net: nn.Module, spec: CompressionSpec) -> dict[str, torch.Tensor]:
    """The compressed network as plain tensors for safetensors (see the module's doc)."""
    out: dict[str, torch.Tensor] = {}
    int8 = _int8_layers(net)
    sparse = spec.prune > 0
    with _quiet_deprecation():
        for name, m in int8.items():
            qw, bias = m.weight(), m.bias()
            # a zero weight is the integer 0 only with zero point 0 (qint8's symmetric scheme): then sparse
            _pack(f"{name}.weight.int8", qw.int_repr(), sparse and qw.q_zero_point() == 0, out)
            out[f"{name}.weight.scale"] = torch.tensor(qw.q_scale(), dtype=torch.float64)
            out[f"{name}.weight.zero_point"] = torch.tensor(qw.q_zero_point(), dtype=torch.int64)
            if bias is not None:
                out[f"{name}.bias"] = bias.detach().contiguous()
    prunable = {f"{n}.weight" for n, m in net.named_modules() if isinstance(m, PRUNABLE)}
    for key, value in net.state_dict().items():
        if any(key.startswith(f"{n}.") for n in int8) or not isinstance(value, torch.Tensor) or value.is_quantized:
            continue  # the int8 layers' packed params, written above
        _pack(key, value.detach(), sparse and key in prunable, out)
    return out


def from_tensors(fp32_template: nn.Module, tensors: dict[str, torch.Tensor], spec: CompressionSpec) -> nn.Module:
    """Rebuild the compressed network from :func:`to_tensors`' output on
    ``fp32_template`` (the network's architecture; its weights are not used)."""
    net = copy.deepcopy(fp32_template).cpu().eval()
    state = net.state_dict()
    linear_names = {n for n, m in net.named_modules() if isinstance(m, nn.Linear)} if spec.quantize == "int8" else set()
    fp32_state = {k: _unpack(k, tuple(v.shape), tensors) for k, v in state.items()
                  if not any(k.startswith(f"{n}.") for n in linear_names)}
    net.load_state_dict(fp32_state, strict=False)
    if spec.quantize != "int8":
        return net
    net = quantize_int8(net)
    with _quiet_deprecation():
        for name, m in _int8_layers(net).items():
            shape = tuple(m.weight().shape)
            ints = _unpack(f"{name}.weight.int8", shape, tensors).to(torch.float64)
            scale = float(tensors[f"{name}.weight.scale"])
            zero_point = int(tensors[f"{name}.weight.zero_point"])
            # (q - zp) * scale is exact in float64, and quantising it with the same scale and zero point
            # rounds back to q: the layer gets the stored integers
            qw = torch.quantize_per_tensor(((ints - zero_point) * scale).float(), scale, zero_point, torch.qint8)
            m.set_weight_bias(qw, tensors.get(f"{name}.bias"))
    return net


def zero_fraction(net: nn.Module) -> float:
    """The share of zeros among the Linear and Conv2d weights (int8 layers: among their integers)."""
    zeros = total = 0
    int8 = set(_int8_layers(net).values())
    with _quiet_deprecation():
        for m in net.modules():
            if isinstance(m, PRUNABLE):
                w = m.weight.detach()
            elif m in int8:
                w = m.weight().int_repr()
            else:
                continue
            zeros, total = zeros + int((w == 0).sum()), total + w.numel()
    return zeros / max(total, 1)


# -- measurement -------------------------------------------------------------------------------------
def paired_batch_seconds(fns: dict[str, Callable[[], Any]], repeats: int = 30,
                         warmup: int = 3) -> dict[str, dict[str, float]]:
    """Each ``fn()``'s median time over ``repeats`` rounds, on one torch
    thread (a CPU deployment's setting), after ``warmup`` rounds: ``{name:
    {"cpu": s, "wall": s}}``. Each round calls every ``fn`` once, in turn.

    ``cpu`` is the calling thread's CPU time (``time.thread_time``): with one
    torch thread the work runs on it, and the time it spends descheduled
    does not count. On the shared 2-core machine (4 or more busy processes)
    wall time is not a measure of the network: timed one after the other,
    the same fp32 player took 4 and 9 ms per batch a minute apart, and even
    in alternation the fp32/int8 wall ratio ranged 1.4x-2.7x over one sweep."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cpu: dict[str, list[float]] = {name: [] for name in fns}
    wall: dict[str, list[float]] = {name: [] for name in fns}
    try:
        with torch.inference_mode():
            for r in range(warmup + repeats):
                for name, fn in fns.items():
                    c, t = time.thread_time(), time.perf_counter()
                    fn()
                    if r >= warmup:
                        wall[name].append(time.perf_counter() - t)
                        cpu[name].append(time.thread_time() - c)
    finally:
        torch.set_num_threads(threads)
    return {name: {"cpu": statistics.median(cpu[name]), "wall": statistics.median(wall[name])} for name in fns}


def greedy_policy(q_net: nn.Module) -> Callable[[np.ndarray], np.ndarray]:
    """``obs -> argmax_a Q(obs, a)`` of a Q-network (fp32 or int8)."""
    @torch.inference_mode()
    def policy(obs: np.ndarray) -> np.ndarray:
        return q_net(torch.as_tensor(obs).float()).argmax(1).numpy()

    return policy


def generator_quality(G: nn.Module, corpus: list, n_boxes: int, samples: int, seed: int,
                      solve_time_limit: float) -> dict[str, float]:
    """G's decoded levels from ``samples`` fixed latent vectors (the CLM's
    decoding: G's most probable tiles, the corpus's box count): their
    tile-pattern KL to the corpus and the fraction the solver solves with at
    least one push."""
    z = np.random.default_rng(seed).standard_normal((samples, G.z_dim)).astype(np.float32)
    with torch.inference_mode():
        levels = decode_latents(G, z, n_boxes)
    results = [solve_level(lv, time_limit=solve_time_limit) for lv in levels]
    return {"tile_kl": tile_pattern_kl(levels, corpus),
            "solvable_fraction": float(np.mean([r.solved and r.pushes > 0 for r in results]))}


def file_bytes(tensors: dict[str, torch.Tensor]) -> int:
    """The size of ``tensors`` as one safetensors file."""
    return len(save(tensors))


@dataclass
class Row:
    """One line of the table: a network before or after compression."""

    network: str  #: player | generator
    variant: str  #: fp32 (the run's network) or the spec's label
    bytes: int  #: its safetensors file (the original: dense fp32)
    batch_ms: float  #: median CPU time of one batch, one thread (the thread's CPU time: see paired_batch_seconds)
    batch_wall_ms: float  #: the same batches' median wall time (noisy on a shared machine)
    batch: int  #: inputs per batch
    zero_fraction: float  #: zeros among its Linear/Conv weights
    heldout_solve_rate: float | None = None  #: player: the run's held-out solve rate
    tile_kl: float | None = None  #: G: tile-pattern KL of its decoded levels to the corpus
    solvable_fraction: float | None = None  #: G: share of decoded levels the solver solves (>= 1 push)
    speedup: float | None = None  #: the fp32 network's batch CPU time / this one's
    size_ratio: float | None = None  #: this file's bytes / the fp32 file's


@dataclass
class Measured:
    """A loaded levels run ready to measure: its networks and its data."""

    player: nn.Module
    G: nn.Module
    player_inputs: torch.Tensor  #: a batch of held-out start states (one-hot)
    latents: torch.Tensor  #: a batch of latent vectors
    heldout: list
    corpus: list
    n_boxes: int
    solve_time_limit: float
    samples: int
    seed: int


def load_for_compression(run_dir: str | Path, batch: int = 256, samples: int = 256) -> Measured:
    """The player and G (EMA) of a levels ``clm run`` folder, with the data
    that measures them; a clear error (exit 2) when the folder lacks them."""
    domain = run_domain(run_dir)
    if domain != "levels":
        raise UserError(f"clm compress measures levels runs (held-out solve rate, tile_kl); {run_dir} is a "
                        f"{domain} run", exit_code=2)
    run = load_run(run_dir)
    if run.player is None:
        raise UserError(f"{run_dir} holds no player network (checkpoints/clm has no player weights)", exit_code=2)
    cfg = run.cfg
    heldout = run.heldout[: cfg.eval_levels]
    if not heldout:
        raise UserError(f"{run_dir}: the run has no held-out levels to measure the player on", exit_code=2)
    reps = np.resize(np.arange(len(heldout)), batch)  # the held-out start states, repeated to a full batch
    x = torch.from_numpy(levels_to_onehot([heldout[i] for i in reps])).float()
    gen = torch.Generator().manual_seed(cfg.seed + 31)
    z = torch.randn(batch, run.G.z_dim, generator=gen)
    return Measured(run.player.cpu().eval(), run.G.cpu().eval(), x, z, heldout, run.corpus, run.judge.n_boxes,
                    cfg.solve_time_limit, samples, cfg.seed + 77)


def quality(m: Measured, network: str, net: nn.Module) -> dict[str, float]:
    """The player's held-out solve rate, or G's tile_kl and solvable fraction."""
    if network == "player":
        return {"heldout_solve_rate": player_solve_rate(greedy_policy(net), m.heldout)}
    return generator_quality(net, m.corpus, m.n_boxes, m.samples, m.seed, m.solve_time_limit)


def batch_call(m: Measured, network: str, net: nn.Module) -> Callable[[], Any]:
    """One batch of inference: Q-values of held-out start states, or G's tile probabilities."""
    if network == "player":
        return lambda: net(m.player_inputs)
    return lambda: net.probs(m.latents)


def compare(m: Measured, spec: CompressionSpec, repeats: int = 30,
            fp32_quality: dict[str, dict[str, float]] | None = None
            ) -> tuple[list[Row], dict[str, dict[str, torch.Tensor]]]:
    """Rows before and after ``spec`` for the player and G, and the
    compressed networks' tensors. The fp32 and compressed networks are timed
    in alternation (:func:`paired_batch_seconds`); ``fp32_quality`` (filled
    in when given) keeps the originals' quality across the specs of a sweep."""
    cache = fp32_quality if fp32_quality is not None else {}
    rows, tensors = [], {}
    for network, net in (("player", m.player), ("generator", m.G)):
        small = compress(net, spec)
        tensors[network] = to_tensors(small, spec)
        seconds = paired_batch_seconds({"fp32": batch_call(m, network, net),
                                        "compressed": batch_call(m, network, small)}, repeats)
        if network not in cache:
            cache[network] = quality(m, network, net)
        batch = len(m.player_inputs if network == "player" else m.latents)
        fp, cp = seconds["fp32"], seconds["compressed"]
        base = Row(network, "fp32", file_bytes(to_tensors(net, CompressionSpec())), 1e3 * fp["cpu"], 1e3 * fp["wall"],
                   batch, zero_fraction(net), **cache[network])
        row = Row(network, spec.label, file_bytes(tensors[network]), 1e3 * cp["cpu"], 1e3 * cp["wall"], batch,
                  zero_fraction(small), **quality(m, network, small), speedup=fp["cpu"] / cp["cpu"])
        row.size_ratio = row.bytes / base.bytes
        rows += [base, row]
    return rows, tensors


TABLE_COLUMNS = [("network", "network"), ("variant", "variant"), ("bytes", "bytes"), ("size_ratio", "size x"),
                 ("batch_ms", "batch CPU ms"), ("speedup", "speed x"), ("batch_wall_ms", "wall ms"),
                 ("zero_fraction", "zeros"),
                 ("heldout_solve_rate", "held-out solve rate"), ("tile_kl", "tile_kl"),
                 ("solvable_fraction", "solvable")]


def markdown_table(rows: list[Row]) -> str:
    """The rows as a markdown table (empty cells where a figure does not apply)."""
    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    head = "| " + " | ".join(t for _, t in TABLE_COLUMNS) + " |\n"
    rule = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|\n"
    body = "".join("| " + " | ".join(cell(getattr(r, k)) for k, _ in TABLE_COLUMNS) + " |\n" for r in rows)
    return head + rule + body


def compress_run(run_dir: str | Path, spec: CompressionSpec, out: str | Path | None = None, batch: int = 256,
                 samples: int = 256, repeats: int = 30) -> tuple[Path, list[Row]]:
    """``clm compress``: compress the run's player and G, measure both
    before and after, and write the folder ``out`` whole (default
    ``RUN_DIR/compressed-<spec>``): ``player.safetensors``,
    ``generator.safetensors``, ``compression.json`` and ``compression.md``."""
    out = Path(out) if out is not None else Path(run_dir) / f"compressed-{spec.label}"
    check_output_folder(out, MARKER)
    m = load_for_compression(run_dir, batch, samples)
    rows, tensors = compare(m, spec, repeats)
    record = {"format_version": FORMAT_VERSION, "run_dir": str(Path(run_dir).resolve()), "spec": asdict(spec),
              "torch": torch.__version__, "threads": 1, "repeats": repeats,
              "files": {net: f"{net}.safetensors" for net in NETWORKS},
              "rows": [asdict(r) for r in rows]}
    with folder_written_whole(out, MARKER) as tmp:
        for net in NETWORKS:
            atomic_write_bytes(tmp / f"{net}.safetensors", save(tensors[net], metadata={
                "clm": "compressed", "network": net, "spec": json.dumps(asdict(spec))}))
        atomic_write_text(tmp / "compression.md", markdown_table(rows))
        atomic_write_text(tmp / MARKER, json.dumps(record, indent=2) + "\n")
    return out, rows


def load_compressed(folder: str | Path, run_dir: str | Path | None = None) -> dict[str, nn.Module]:
    """The compressed networks of a ``clm compress`` folder, rebuilt on the
    architectures of their run (``run_dir``, default the one the folder names)."""

    folder = Path(folder)
    try:
        record = json.loads((folder / MARKER).read_text())
        spec = CompressionSpec(**record["spec"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise UserError(f"{folder} is not a folder that clm compress wrote ({type(e).__name__}: {e})", exit_code=2)
    run = load_run(run_dir or record["run_dir"])
    out = {}
    for net, template in (("player", run.player), ("generator", run.G)):
        try:
            tensors = load((folder / record["files"][net]).read_bytes())
        except (OSError, SafetensorError) as e:
            raise UserError(f"{folder}: cannot read the {net}'s weights ({e})", exit_code=2)
        out[net] = from_tensors(template, tensors, spec)
    return out
