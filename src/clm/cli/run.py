"""``clm run`` (the main job: the CLM on a registered domain) and ``clm generate``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clm.agents.dqn import check_data_parallel
from clm.cli.common import add_training_arguments, config_and_run_dir, removed_on_failure
from clm.core import distributed
from clm.core.checkpoint import read_meta
from clm.core.config import parse_overrides, read_yaml, save_config
from clm.core.errors import UsageError
from clm.core.rundir import dumps_line, require_run_dir
from clm.engine import registry
from clm.engine.loop import run_clm
from clm.report.html import write_report
from clm.tools.explain import explain_run


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run the Creative Learning Model (the main job)",
                         description="Run the CLM: a GAN and DQN agents learning together, on a registered domain "
                                     "(--domain; clm.engine.registry). levels (default): a player and a designer DQN "
                                     "on Sokoban, settings CLMConfig keys (nested: player.lr=1e-3, gan.loss=hinge); "
                                     "art: a painter DQN on a canvas with G's fragments (ArtConfig); text: a writer "
                                     "DQN editing words with G's proposals (TextConfig).")
    add_training_arguments(run, "CLMConfig", "run")
    run.add_argument("--domain", choices=registry.names(), help=f"the domain (default {registry.DEFAULT_DOMAIN}): "
                     + ", ".join(registry.names()))
    run.add_argument("--data", help="levels: generated (default), boxoban:DIR, or a Boxoban file/folder; "
                                    "art: digits (default) or mnist:PATH_TO_IMAGES_IDX; text: cmudict (default) or a "
                                    "file of words, one per line")
    run.add_argument("--constraint", help="text: what the writer's words must meet, e.g. 'length=6-8,start=s' or "
                                          "'rhymes=night' (keys length, start, end, contains, rhymes)")
    run.add_argument("--preset", help="a domain's preset (levels: small, CPU minutes; boxoban: full scale, GPU)")
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="write new artefacts from a CLM run (levels: solver-verified)",
                         description="Levels runs: a Boxoban text file of verified levels. Art runs: a PNG grid of "
                                     "canvases. Metrics, one line per artefact, go to FILE.jsonl. Text runs: a "
                                     "text file of words, each with its metrics on its line (tab-separated JSON).")
    gen.add_argument("run_dir", metavar="RUN_DIR")
    gen.add_argument("-n", type=int, required=True, help="number of levels, canvases or words")
    gen.add_argument("--out", required=True, help="levels: Boxoban .txt file; art: .png file (metrics: FILE.jsonl); text: .txt file")
    gen.add_argument("--search", default=None,
                     help="the run domain's searches: levels: designer (default), random, cmaes, map_elites or cma_me "
                          "over G's latent space, or random_edits (MAP-Elites editing G's levels); "
                          "art: painter (default: the run's painter DQN) or random (G's plain samples); "
                          "text: writer (default: the run's writer DQN) or random (G's plain samples)")
    gen.add_argument("--difficulty", metavar="LO:HI", help="optimal pushes in [LO, HI]")
    gen.add_argument("--min-novelty", type=int, help="least Hamming distance to the corpus, archive and each other")
    gen.add_argument("--load", action="append", metavar="X,Y,FX,FY",
                     help='design: a point load at node (X from the left, Y from the bottom) with force (FX, FY); '
                          'repeat for a second load')
    gen.add_argument("--support", help="design: the supports, cantilever (default: the left edge clamped) or mbb "
                                       "(the half MBB beam: the left edge held in x, the bottom-right node in y)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--max-evaluations", type=int, default=0, help="G evaluations before giving up (0: 500 n)")
    gen.set_defaults(func=cmd_generate)


def _run_domain(args: argparse.Namespace) -> str:
    """--domain, or the resumed run's own domain (from its checkpoint), or levels."""
    if not args.resume:
        return args.domain or registry.DEFAULT_DOMAIN
    saved = _saved_domain(args.resume, default=args.domain or registry.DEFAULT_DOMAIN)
    if args.domain and args.domain != saved:
        raise UsageError(f"--resume {args.resume}: the run is of the {saved} domain, not {args.domain}; drop --domain")
    return saved


def _preset(args: argparse.Namespace, spec: registry.DomainSpec) -> str | None:
    """--preset NAME, or ``preset=NAME`` given as a key (command line or --config): the preset's
    settings are the base; the file and the command line still override them."""
    if args.resume:
        return None
    value = args.preset
    if value is None:
        value = parse_overrides([o for o in args.overrides if o.split("=", 1)[0].strip() == "preset"]).get("preset")
    if value is None and args.config:
        value = read_yaml(args.config).get("preset")
    if value is not None and not spec.presets:
        raise UsageError(f"--preset {value}: the {spec.name} domain has no presets (drop --preset)")
    if value is not None and value not in spec.presets:
        raise UsageError(f"unknown preset {value!r}: use one of {', '.join(spec.presets)}")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    """Under torchrun every process runs this (the player's learner is
    data-parallel, see :mod:`clm.engine.loop`): all read and check the
    config, rank 0 alone makes and writes the run folder and prints."""
    overrides = list(args.overrides)
    if args.data:
        overrides.append(f"data={json.dumps(args.data)}")  # quoted: a path is never read as YAML (010 -> 8)
    spec = registry.get(_run_domain(args))
    launch = distributed.launch_env()
    main = launch is None or launch.rank == 0

    def check(cfg) -> None:  # before any folder is made: what the ranks would each refuse later
        if spec.learner_config is not None:
            check_data_parallel(spec.learner_config(cfg), launch.world_size if launch else 1)
        distributed.device_for(cfg.device)
    for option in ("constraint",):
        if getattr(args, option) is not None:
            if option not in spec.run_options:
                takers = [n for n in registry.names() if option in registry.get(n).run_options]
                raise UsageError(f"--{option} is for the {', '.join(takers)} domain, not {spec.name}")
            overrides.append(f"{option}={json.dumps(getattr(args, option))}")
    preset = _preset(args, spec)
    base = {**spec.presets[preset], "preset": preset} if preset else None
    cfg, run_dir = config_and_run_dir(args, spec.config_cls, "run", overrides, "clm", base=base,
                                      resumable=spec.resumable, check=check, create=main)
    with distributed.process_group(cfg.device):
        if not main:
            run_clm(cfg, run_dir, resume=bool(args.resume), quiet=True)
            return 0
        with removed_on_failure(run_dir, bool(args.resume)):
            save_config(cfg, run_dir / "config.yaml")
            summary = run_clm(cfg, run_dir, resume=bool(args.resume), quiet=args.json)
    report = None
    if cfg.report:
        if summary["status"] != "gan_diverged":  # a diverged run keeps no generated levels, and its D explains nothing
            _write_attributions(run_dir)
        report = write_report(run_dir)
    if args.json:
        print(dumps_line({**summary, "run_dir": str(run_dir), "report": str(report) if report else None}))
    else:
        if spec.summary_line is not None:
            print(spec.summary_line(summary))
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
    try:
        explain_run(run_dir)
    except Exception as e:  # noqa: BLE001 - any failure: the report is still written
        print(f"warning: no attributions in the report ({type(e).__name__}: {e}); run clm explain {run_dir} "
              f"to retry", file=sys.stderr)


def cmd_generate(args: argparse.Namespace) -> int:
    """``clm generate RUN_DIR``: the run's domain (from its checkpoint) writes the artefacts."""
    if args.n < 1:
        raise UsageError("-n must be >= 1")
    spec = registry.get(_saved_domain(args.run_dir))
    if spec.generate is None:
        raise UsageError(f"the {spec.name} domain has no clm generate")
    if spec.name != "design" and (args.load or args.support):
        raise UsageError(f"--load and --support are for design runs; {args.run_dir} is a {spec.name} run")
    return spec.generate(args)


def _saved_domain(run_dir: str, default: str = registry.DEFAULT_DOMAIN) -> str:
    """The domain of a run folder from its checkpoint's meta (older runs: levels); ``default`` when
    there is no readable checkpoint (the caller's own loader then says what is wrong)."""
    folder = require_run_dir(run_dir, "run") / "checkpoints" / "clm"
    try:
        return str(read_meta(folder)[1].get("domain", registry.DEFAULT_DOMAIN))
    except Exception:
        return default
