"""``clm serve``'s page (templates/page.html.j2): the form that asks for
levels, the level buttons, the report's player (clm.domains.levels'
player.html.j2) and the favourites. All inline, like the report: the page
loads nothing from elsewhere."""

from __future__ import annotations

from clm.core.templating import render


def page_html(run_name: str, searches: list[str], min_novelty: int) -> str:
    return render(("clm.serve", "clm.domains.levels"), "page.html.j2", run_name=run_name, searches=searches,
                  min_novelty=min_novelty, levels={})
