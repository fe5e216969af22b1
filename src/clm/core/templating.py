"""Jinja2 for the HTML the project writes: the report's layout and every
section's template (each package keeps its own in ``templates/``).

Autoescape is on for every template: a value from a run folder (a config,
a message, a level name) is text, never markup. What is markup on purpose
(a section's rendered body, the report's CSS) says so with ``Markup``.
Templates share the macros of ``clm/core/templates/macros.html.j2``
(missing notes, notes, tables, embedded PNGs) and the filters ``fmt``
(:func:`clm.core.html.fmt_value`) and ``png`` (a PNG as a data URI).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jinja2 import ChoiceLoader, Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from clm.core.html import data_uri, fmt_value
from clm.core.rundata import NOT_RECORDED, is_number


def record_columns(records) -> list[str]:
    """The union of the records' keys, in order of first appearance."""
    columns: list[str] = []
    for r in records:
        for k in r:
            if k not in columns:
                columns.append(k)
    return columns


def record_rows(records, columns: list[str], index: bool) -> list[list]:
    """One row per record, "" where it lacks a column; its position first with ``index``."""
    rows = [[r.get(c, "") for c in columns] for r in records]
    return [[i] + row for i, row in enumerate(rows)] if index else rows


def json_for_script(obj: Any) -> Markup:
    """JSON safe inside ``<script type="application/json">`` (whose text no
    entity escaping reaches): ``<``, ``>`` and ``&`` as JSON escapes, so no
    value can close the script element."""
    return Markup(json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


@lru_cache(maxsize=None)
def environment(*packages: str) -> Environment:
    """The Jinja2 environment of the ``packages``' templates (looked up in that order, then clm.core's)."""
    loaders = [PackageLoader(p, "templates") for p in packages + ("clm.core",)]
    env = Environment(loader=ChoiceLoader(loaders), autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["fmt"] = fmt_value
    env.filters["png"] = data_uri
    env.filters["json"] = lambda v: json.dumps(v, indent=2)
    env.filters["script_json"] = json_for_script
    env.globals.update(is_number=is_number, record_columns=record_columns, record_rows=record_rows,
                       NOT_RECORDED=NOT_RECORDED)
    return env


def render(package: str | tuple[str, ...], name: str, /, **context: Any) -> Markup:
    """The template ``name`` of ``package`` (or of the first of several that has it), rendered with
    ``context`` (escaped), as markup."""
    packages = (package,) if isinstance(package, str) else tuple(package)
    return Markup(environment(*packages).get_template(name).render(**context).strip())
