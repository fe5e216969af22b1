"""``clm serve``'s web app (FastAPI): a page to generate, play and keep levels.

Routes: ``GET /`` the page; ``GET /api/info`` the run and its searches;
``POST /api/generate`` new levels (``n``, ``difficulty`` "LO:HI" in optimal
pushes, ``min_novelty``, ``search``: as ``clm generate``); ``POST
/api/favourites`` keeps a generated level (by its id) in the run folder;
``GET /api/favourites`` the kept ones. A malformed request gets a 4xx JSON
``{"detail": ...}`` (FastAPI's 422 for a wrong field, 400 for a value the
run cannot take, 404 for an unknown level); anything unexpected a 500 JSON
message, never a traceback page.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from clm.core.errors import UserError
from clm.domains.levels import Level
from clm.levels_clm.generate import parse_difficulty
from clm.serve.page import page_html
from clm.serve.sources import Favourites, payload

MAX_LEVELS_PER_REQUEST = 12
MAX_EVALUATIONS = 20_000


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(3, ge=1, le=MAX_LEVELS_PER_REQUEST, description="levels to generate")
    difficulty: str | None = Field(None, max_length=32, description="LO:HI optimal pushes, as clm generate")
    min_novelty: int | None = Field(None, ge=0, le=1000, description="least Hamming distance (default: the run's)")
    search: str | None = Field(None, max_length=16, description="designer, random or cmaes (default: the first)")
    max_evaluations: int = Field(0, ge=0, le=MAX_EVALUATIONS, description="G evaluations (0: 500 per level)")


class FavouriteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(..., min_length=1, max_length=32, description="a level id from /api/generate")
    note: str = Field("", max_length=500, description="the person's words on the level")


def create_app(source) -> FastAPI:
    """The app over ``source`` (:class:`~clm.serve.sources.RunLevels`, or any
    object with its ``run_dir``, ``searches``, ``min_novelty`` and ``generate``)."""
    app = FastAPI(title="clm serve", docs_url=None, redoc_url=None, openapi_url=None)
    favourites = Favourites(source.run_dir)
    generated: dict[str, tuple[Level, dict[str, Any]]] = {}
    counter = itertools.count()
    lock = threading.Lock()  # one generation at a time: G, the judge and the rng are shared

    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError):
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
                             for e in exc.errors())
        return JSONResponse({"detail": f"malformed request: {problems}"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        return JSONResponse({"detail": f"the server failed: {type(exc).__name__}: {exc}"}, status_code=500)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page_html(str(source.run_dir.resolve().name), source.searches, source.min_novelty)

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"run": str(source.run_dir.resolve()), "searches": source.searches, "min_novelty": source.min_novelty,
                "favourites": len(favourites.levels()), "favourites_file": str(favourites.path)}

    @app.post("/api/generate")
    def generate(req: GenerateRequest) -> dict[str, Any]:
        lo, hi = parse_difficulty(req.difficulty, "difficulty")
        search = req.search or source.searches[0]
        k = source.min_novelty if req.min_novelty is None else req.min_novelty
        with lock:
            levels, records, spent = source.generate(req.n, search, lo, hi, k, req.max_evaluations,
                                                     favourites.levels())
            ids = [f"g{next(counter)}" for _ in levels]
            for level_id, lv, rec in zip(ids, levels, records):
                generated[level_id] = (lv, {**rec, "search": search, "difficulty": req.difficulty or "any",
                                                "min_novelty": k})
        message = "" if len(levels) == req.n else (
            f"found only {len(levels)} of {req.n} levels within {spent} G evaluations; widen the difficulty, lower "
            f"the novelty or allow more evaluations")
        return {"levels": payload(levels, records, ids), "evaluations": spent, "message": message}

    @app.post("/api/favourites")
    def add_favourite(req: FavouriteRequest) -> JSONResponse:
        if req.id not in generated:
            return JSONResponse({"detail": f"no generated level {req.id!r}: generate levels first and mark one of "
                                           f"their ids"}, status_code=404)
        level, record = generated[req.id]
        count = favourites.add(level, {**record, "id": req.id, "note": req.note, "judge": "person"})
        return JSONResponse({"favourites": count, "file": str(favourites.path)})

    @app.get("/api/favourites")
    def list_favourites() -> dict[str, Any]:
        levels = favourites.levels()
        return {"file": str(favourites.path), "levels": [lv.to_text().split("\n") for lv in levels],
                "records": favourites.records()}

    return app
