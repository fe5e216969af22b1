"""The CLM on automated design: a conditional G proposes structures for a load case, an editor DQN edits them,
the finite-element solver judges, SIMP's designs are the real data and the bar."""

from clm.design_clm.config import DesignConfig
from clm.design_clm.domain import DesignCLM
from clm.design_clm.explain import explain_design_run
from clm.design_clm.generate import generate
from clm.design_clm.report import HEADLINE_FIGURES, section_design_archive, section_design_pictures
from clm.engine.registry import DomainSpec, ReportSection, register


def _summary_line(summary: dict) -> str:
    within, g = summary.get("design_within10_fraction"), summary.get("g_within10_fraction")
    ratio = summary.get("design_median_ratio")
    fmt = lambda v: "not evaluated" if v is None else f"{v:.2f}"  # noqa: E731
    return (f"creative designs {summary['creative_designs']}, held-out designs connected and within 10% of SIMP: "
            f"editor {fmt(within)} (G alone {fmt(g)}), median compliance / SIMP's {fmt(ratio)}, "
            f"{summary['wall_seconds']:.0f} s")


SPEC = register(DomainSpec(
    name="design", config_cls=DesignConfig, domain_cls=DesignCLM, headline="design_within10_fraction",
    figures=DesignCLM.evaluation_keys + ("creative_designs",),
    resumable=("rounds", "max_seconds", "eval_every", "eval_cases", "report", "wandb", "threads", "device"),
    tune_space={
        "player.lr": {"type": "loguniform", "low": 1e-4, "high": 2e-3},
        "gan_steps": {"type": "categorical", "choices": [15, 30, 60]},
        "novelty_weight": {"type": "uniform", "low": 0.0, "high": 1.0},
        "connect_penalty": {"type": "uniform", "low": 0.25, "high": 2.0},
        "supervised_weight": {"type": "uniform", "low": 0.0, "high": 2.0},
    },
    agent_name="editor", summary_line=_summary_line, generate=generate, explain=explain_design_run,
    headline_figures=HEADLINE_FIGURES, learner_config=lambda cfg: cfg.player,
    report_sections=(ReportSection("pictures", "Designs", section_design_pictures),
                     ReportSection("archive", "Creative designs", section_design_archive, "bottom")),
))
