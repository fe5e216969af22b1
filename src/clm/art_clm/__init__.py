"""The CLM on art: a painter DQN on a canvas with G's fragments, D judging the work."""

from clm.art_clm.config import ArtConfig
from clm.art_clm.domain import ArtCLM
from clm.art_clm.explain import explain_art_run
from clm.art_clm.generate import generate
from clm.art_clm.report import (
    HEADLINE_FIGURES,
    section_art_archive,
    section_art_pictures,
)
from clm.engine.registry import DomainSpec, ReportSection, register


def _summary_line(summary: dict) -> str:
    creative = summary.get("canvas_creative_fraction")
    return (f"creative canvases {summary['creative_canvases']}, painter's canvases creative "
            f"{'not evaluated' if creative is None else f'{creative:.2f}'}, FD-clf ratio painter "
            f"{summary.get('canvas_fd_clf_ratio') or float('nan'):.2f} / plain G "
            f"{summary.get('plain_gan_fd_clf_ratio') or float('nan'):.2f}, {summary['wall_seconds']:.0f} s")


SPEC = register(DomainSpec(
    name="art", config_cls=ArtConfig, domain_cls=ArtCLM, headline="canvas_creative_fraction",
    figures=ArtCLM.evaluation_keys + ("creative_canvases",),
    resumable=("rounds", "max_seconds", "eval_every", "eval_canvases", "report", "wandb", "threads", "device"),
    # the agent's learning and the reward's weights
    tune_space={
        "player.lr": {"type": "loguniform", "low": 1e-4, "high": 2e-3},
        "gan_steps": {"type": "categorical", "choices": [50, 100, 200]},
        "realism_weight": {"type": "uniform", "low": 0.5, "high": 4.0},
        "novelty_weight": {"type": "uniform", "low": 0.25, "high": 2.0},
        "kept_weight": {"type": "uniform", "low": 0.0, "high": 1.0},
    },
    agent_name="painter", summary_line=_summary_line, generate=generate, explain=explain_art_run,
    headline_figures=HEADLINE_FIGURES, learner_config=lambda cfg: cfg.player,
    report_sections=(ReportSection("pictures", "Canvases", section_art_pictures),
                     ReportSection("archive", "Archive table", section_art_archive, "bottom")),
))
