"""The CLM on text: a writer DQN inventing words by editing with G's proposals."""

from clm.engine.registry import DomainSpec, ReportSection, register
from clm.text_clm.config import TextConfig
from clm.text_clm.domain import TextCLM
from clm.text_clm.explain import explain_text_run
from clm.text_clm.generate import generate
from clm.text_clm.report import (
    HEADLINE_FIGURES,
    section_text_edits,
    section_text_gallery,
)


def _summary_line(summary: dict) -> str:
    creative, plain = summary.get("text_creative_fraction"), summary.get("plain_gan_creative_fraction")
    return (f"creative words {summary['creative_words']}, writer's words creative "
            f"{'not evaluated' if creative is None else f'{creative:.2f}'} (G's plain samples "
            f"{'-' if plain is None else f'{plain:.2f}'}), {summary['wall_seconds']:.0f} s")


SPEC = register(DomainSpec(
    name="text", config_cls=TextConfig, domain_cls=TextCLM, headline="text_creative_fraction",
    figures=TextCLM.evaluation_keys + ("creative_words",),
    resumable=("rounds", "max_seconds", "eval_every", "eval_words", "report", "wandb", "threads", "device"),
    tune_space={
        "player.lr": {"type": "loguniform", "low": 1e-4, "high": 2e-3},
        "gan_steps": {"type": "categorical", "choices": [50, 100, 200]},
        "realism_weight": {"type": "uniform", "low": 0.25, "high": 2.0},
        "fluency_weight": {"type": "uniform", "low": 0.25, "high": 2.0},
        "novelty_weight": {"type": "uniform", "low": 0.25, "high": 2.0},
    },
    agent_name="writer", summary_line=_summary_line, run_options=("constraint",), generate=generate,
    explain=explain_text_run, headline_figures=HEADLINE_FIGURES, learner_config=lambda cfg: cfg.player,
    report_sections=(ReportSection("gallery", "Creative words", section_text_gallery),
                     ReportSection("edits", "The writer at work", section_text_edits)),
))
