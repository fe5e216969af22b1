"""The CLM on Sokoban levels (the main job): a player DQN learning from G's
verified levels and the solver's demonstrations, a designer DQN searching
G's latent space, a judge, a creative archive and a QD grid."""

from dataclasses import replace

from clm.engine.registry import DomainSpec, ReportSection, register
from clm.levels_clm.config import PRESETS, CLMConfig
from clm.levels_clm.domain import SokobanCLM
from clm.levels_clm.explain import explain_level_run
from clm.levels_clm.generate import generate
from clm.levels_clm.report import (
    HEADLINE_FIGURES,
    section_archive_table,
    section_edits,
    section_evidence,
    section_levels,
    section_play,
    section_qd,
)


def _summary_line(summary: dict) -> str:
    solve = summary.get("player_solve_rate")
    solve_text = "not evaluated (the run ended first)" if solve is None else f"{solve:.2f}"
    return (f"creative levels {summary['creative_levels']}, player solve rate {solve_text}, raw G samples playable "
            f"{summary['generated_playable_fraction'] or 0:.2f}, {summary['wall_seconds']:.0f} s")


def _learner_config(cfg: CLMConfig):
    return cfg.player if cfg.player_demos else replace(cfg.player, demo_fraction=0.0)


SPEC = register(DomainSpec(
    name="levels", config_cls=CLMConfig, domain_cls=SokobanCLM, headline="player_solve_rate",
    figures=("player_solve_rate", "creative_levels", "generated_playable_fraction", "qd_score", "qd_coverage"),
    resumable=("rounds", "max_seconds", "eval_every", "eval_levels", "stuck_rounds", "report", "wandb", "threads",
               "device"),
    # the player's learning and the couplings' strengths
    tune_space={
        "player.lr": {"type": "loguniform", "low": 1e-4, "high": 2e-3},
        "player.n_step": {"type": "categorical", "choices": [1, 3, 5]},
        "player.gamma": {"type": "categorical", "choices": [0.95, 0.97, 0.99]},
        "player.demo_fraction": {"type": "uniform", "low": 0.1, "high": 0.5},
        "gan_steps": {"type": "categorical", "choices": [30, 60, 120]},
        "generated_fraction": {"type": "uniform", "low": 0.1, "high": 0.5},
        "archive_real_fraction": {"type": "uniform", "low": 0.1, "high": 0.4},
    },
    agent_name="player", summary_line=_summary_line, presets=PRESETS, generate=generate,
    explain=explain_level_run, explain_takes_levels=True,
    headline_figures=HEADLINE_FIGURES, learner_config=_learner_config,
    report_sections=(ReportSection("levels", "Levels", section_levels),
                     ReportSection("play", "Play the levels", section_play),
                     ReportSection("edits", "Edit episodes: levels before and after the edits", section_edits),
                     ReportSection("archive", "Archive table", section_archive_table, "bottom"),
                     ReportSection("qd", "Creative archive as a QD grid", section_qd, "bottom"),
                     ReportSection("evidence", "Evidence: the seed's three problems", section_evidence, "bottom")),
))
