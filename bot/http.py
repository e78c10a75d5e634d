"""The project's one HTTP server (ASGI, Starlette): /healthz plus the routes platform adapters add
(Telegram webhook, WeCom and Official Account callbacks)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def build_http_app(deps, routes: list[Route] | None = None) -> Starlette:
    async def healthz(_request: Request) -> JSONResponse:
        try:
            deps.db.check()
            db_ok = True
        except Exception:
            db_ok = False
        return JSONResponse({"status": "ok" if db_ok else "degraded", "database": db_ok}, status_code=200 if db_ok else 503)

    return Starlette(routes=[Route("/healthz", healthz), *(routes or [])])


async def serve(app: Starlette, host: str, port: int) -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    await uvicorn.Server(config).serve()
