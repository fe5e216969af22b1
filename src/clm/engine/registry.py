"""The domain registry: the one place where a domain of the CLM declares itself.

A domain is one package (``clm.levels_clm``, ``clm.art_clm``, ...) whose
``__init__`` calls :func:`register` once with a :class:`DomainSpec`. The
loop, ``clm run``, ``clm generate``, ``clm tune run``, ``clm explain`` and the
report read the spec; none of them switches on a domain's name.

The built-in domains are imported by :func:`load_builtin` (their module
names are listed once, in :data:`BUILTIN`); a third-party package can add
one through the ``clm.domains`` entry-point group, whose entries name a
module that registers its domain when imported.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from clm.core.errors import UserError
from clm.engine.domain import REQUIRED_MEMBERS

#: the packages of the built-in domains, imported by :func:`load_builtin`
BUILTIN = ("clm.levels_clm", "clm.art_clm", "clm.text_clm", "clm.design_clm")
#: the domain ``clm run`` runs without ``--domain``
DEFAULT_DOMAIN = "levels"


@dataclass(frozen=True)
class ReportSection:
    """One section of a run's report: ``render(run_data) -> html`` (or "" to leave it out)."""

    id: str
    title: str
    render: Callable[[Any], str]  #: ``render(report)``: the report (``run_dir``, ``summary_dict``, ``metric_rows``)
    place: str = "top"  #: "top": after the headline figures; "bottom": after the curves and time shares


@dataclass(frozen=True)
class DomainSpec:
    """What a domain is, for everything above the engine."""

    name: str  #: ``clm run --domain NAME``; the ``domain`` of its checkpoints and summaries
    config_cls: type  #: the run's config dataclass (``validate()``; ``data`` and ``seed`` fields)
    domain_cls: type  #: the :class:`~clm.engine.domain.CLMDomain`, built as ``domain_cls(cfg, device, run_dir)``
    headline: str  #: the summary key of the headline figure (``clm tune run``'s default objective)
    figures: tuple[str, ...]  #: the summary figures ``clm tune run --objective`` may take
    resumable: tuple[str, ...]  #: config keys ``--resume`` may change
    tune_space: dict[str, Any] = field(default_factory=dict)  #: ``clm tune run``'s default space
    agent_name: str = "agent"  #: what the report and messages call the domain's agent
    summary_line: Callable[[dict], str] | None = None  #: the line ``clm run`` prints from the summary
    presets: dict[str, dict] = field(default_factory=dict)  #: ``--preset NAME`` -> config settings
    learner_config: Callable[[Any], Any] | None = None  #: the agent's DQNConfig as its learner will run (checked for torchrun before a folder is made)
    run_options: tuple[str, ...] = ()  #: ``clm run`` options the domain takes besides --data (e.g. "constraint")
    generate: Callable | None = None  #: ``clm generate RUN_DIR``: ``generate(args) -> exit code``
    explain: Callable | None = None  #: ``clm explain``: ``explain(run_dir, out, n=, sanity=[, levels_file=]) -> dict``
    explain_takes_levels: bool = False  #: whether ``clm explain --levels FILE`` applies (the explainer then takes ``levels_file``)
    headline_figures: tuple[tuple[str, str, str], ...] = ()  #: the report's headline cards: (summary key, label, kind)
    report_sections: tuple[ReportSection, ...] = ()  #: the domain's sections of report.html, in order


_REGISTRY: dict[str, DomainSpec] = {}


class RegistryError(TypeError):
    """A domain that cannot be registered (raised at import time: a programming error, not a user's)."""


def register(spec: DomainSpec) -> DomainSpec:
    """Declare a domain. A second domain of the same name, or a domain class
    that lacks a method or attribute the loop uses, is an error naming both."""
    if spec.name in _REGISTRY:
        raise RegistryError(f"domain {spec.name!r} is registered twice ({_REGISTRY[spec.name].domain_cls.__module__}."
                            f"{_REGISTRY[spec.name].domain_cls.__qualname__} and {spec.domain_cls.__module__}."
                            f"{spec.domain_cls.__qualname__})")
    missing = [m for m in REQUIRED_MEMBERS if not hasattr(spec.domain_cls, m)]
    if missing:
        raise RegistryError(f"domain {spec.name!r}: {spec.domain_cls.__qualname__} lacks "
                            f"{', '.join(missing)} of the CLMDomain protocol (clm.engine.domain)")
    if spec.headline not in spec.figures:
        raise RegistryError(f"domain {spec.name!r}: its headline {spec.headline!r} is not among its figures")
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Remove a domain (tests register fakes and take them back out)."""
    _REGISTRY.pop(name, None)


_loaded = False


def load_builtin() -> None:
    """Import the built-in domains and those of the ``clm.domains`` entry points (once)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in BUILTIN:
        importlib.import_module(module)
    for ep in entry_points(group="clm.domains"):
        importlib.import_module(ep.value.split(":")[0])


def names() -> tuple[str, ...]:
    load_builtin()
    return tuple(_REGISTRY)


def get(name: str) -> DomainSpec:
    """The spec of domain ``name``; an unknown name is a user's mistake (exit 2) listing the known ones."""
    load_builtin()
    if name not in _REGISTRY:
        raise UserError(f"unknown domain {name!r}: use one of {', '.join(_REGISTRY)}", exit_code=2)
    return _REGISTRY[name]


def spec_for_config(cfg) -> DomainSpec:
    """The spec whose config class ``cfg`` is."""
    load_builtin()
    for spec in _REGISTRY.values():
        if type(cfg) is spec.config_cls:
            return spec
    raise RegistryError(f"no registered domain has the config class {type(cfg).__qualname__}")
