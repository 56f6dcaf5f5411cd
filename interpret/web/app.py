"""The FastAPI application: web form, JSON API, rule catalogue and CDS Hooks service.

Everything here adapts or renders; every clinical decision is made by the core
(`interpret.pipeline`) from `rules/`. Request bodies and patient values are never logged.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response

from interpret import __version__
from interpret.catalogue import catalogue
from interpret.models import Interpretation, LocatedErrors, PanelIn, to_json
from interpret.pipeline import Interpreter
from interpret.render import environment
from interpret.render.html import render_html
from interpret.render.view import context as report_context
from interpret.validate import InputError, Refusal, refusal, schema_path
from interpret.web import form as web_form
from interpret.web.cds_auth import ClientVerifier, TrustedClient, TrustedClientsOnly
from interpret.web.security import REFUSED_BODIES

log = logging.getLogger("interpret.web")

PANEL_REF = {"$ref": "#/components/schemas/PanelIn"}
BODY_LIMIT = 64 * 1024  # a panel is a few hundred bytes; anything near this is not a panel
UPLOAD_LIMIT = 50 * 1024 * 1024
UPLOAD_PATHS = ("/batch",)
JSON_PATHS = ("/api/v1/interpret", "/cds-services/")  # POSTs here take application/json only
# A CDS Hooks prefetch of 50 Observations and 10 MedicationRequests is ~72 KB; a Synthea
# patient's whole record is a few MB. INTERPRET_CDS_BODY_LIMIT (bytes) overrides it.
CDS_BODY_LIMIT = 8 * 1024 * 1024


DOCS_ASSETS = "/docs-assets"


def _local_docs(app: FastAPI) -> None:
    """Swagger UI from the files the fastapi-offline package ships, not a CDN (a hospital
    network, or a laptop on a train, has no CDN)."""
    from pathlib import Path

    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title}: API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        )


def create_app(
    interpreter: Interpreter | None = None,
    cors_origins: list[str] | None = None,
    cds_clients: list[TrustedClient] | None = None,
    fhir_servers: list[str] | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """The web app. `cds_clients`: the EHRs whose signed calls the CDS Hooks services accept;
    none configured, calls are accepted unsigned (local development)."""
    interpreter = interpreter or Interpreter()
    rs = interpreter.ruleset
    app = FastAPI(
        title="Electrolyte panel interpretation (decision support)",
        version=__version__,
        description=f"Rule set {rs.meta.name} v{rs.version} (sha256 {rs.sha256}). {rs.disclaimer()}",
        docs_url=None,  # served below from local assets: /docs works offline
        redoc_url=None,
    )
    _local_docs(app)
    app.state.interpreter = interpreter
    env = environment()

    @app.exception_handler(RequestValidationError)
    async def located_errors(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            refusal(
                schema_path(tuple(e["loc"])[1:] if e["loc"][:1] == ("body",) else tuple(e["loc"])),
                "input",
                text=e["msg"],
            )
            for e in exc.errors()
        ]
        return _unprocessable(errors)

    # --- API ---------------------------------------------------------------------------

    @app.post(
        "/api/v1/interpret",
        response_model=Interpretation,
        responses={
            200: {
                "content": {"text/html": {}},
                "description": "The Interpretation (JSON), or the HTML report with Accept: text/html",
            },
            400: {"description": "Body could not be read (not UTF-8 JSON)"},
            **REFUSED_BODIES,
            422: {"model": LocatedErrors, "description": "Invalid panel; each error located by JSON path"},
        },
        tags=["api"],
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": PANEL_REF}}}},
    )
    async def interpret_panel(request: Request) -> Response:
        """Interpret one panel (the same JSON shape as the command line).

        Runs on the event loop: the work is CPU-bound and short (well under a millisecond), so
        a thread-pool hop would cost more than it saves. The body is parsed and checked by
        pydantic in one pass (`PanelIn.model_validate_json`); its schema is documented below.
        """
        try:
            result = interpreter.interpret(await request.body())
        except InputError as exc:
            return _unprocessable(exc.errors)
        if _wants_html(request):
            return HTMLResponse(render_html(result))
        return Response(to_json(result), media_type="application/json")

    @app.get("/api/v1/rules", tags=["api"])
    async def rules_catalogue() -> dict[str, Any]:
        """The ruleset catalogue: codes, titles, severities, logic in words, references."""
        return catalogue(rs)

    @app.get("/healthz", tags=["api"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "ruleset_version": rs.version, "ruleset_sha256": rs.sha256}

    # --- pages -------------------------------------------------------------------------

    def page(state: web_form.FormState, result: Interpretation | None = None, status: int = 200) -> HTMLResponse:
        extra = report_context(result) if result is not None else {}
        html = env.get_template("form.html").render(
            state=state,
            units=web_form.unit_choices(rs),
            analytes=[(a, rs.analytes[a].label) for a in web_form.FORM_ANALYTES],
            examples=web_form.EXAMPLE_LABELS,
            ruleset=rs,
            disclaimer=rs.disclaimer(),
            short_disclaimer=" ".join(rs.meta.short_disclaimer.split()),
            has_result=result is not None,
            **extra,
        )
        return HTMLResponse(html, status_code=status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def form_page(example: str | None = None) -> HTMLResponse:
        return page(web_form.state_from_example(example, rs) if example else web_form.FormState())

    @app.post("/", response_class=HTMLResponse, include_in_schema=False)
    async def form_submit(request: Request) -> HTMLResponse:
        fields = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        panel, order = web_form.panel_from_form(fields)
        try:
            result = interpreter.interpret(panel)
        except InputError as exc:
            state = web_form.place_errors(exc.errors, order)
            state.values = fields
            return page(state, status=422)
        return page(web_form.FormState(values=fields), result)

    @app.get("/rules", response_class=HTMLResponse, include_in_schema=False)
    def rules_page(q: str = "", severity: str = "") -> HTMLResponse:
        """The catalogue: an index table first, then a card per rule; `?q=` (words of the
        code, title or logic) and `?severity=` filter both, without JavaScript."""
        c = catalogue(rs)
        words = q.casefold().split()
        shown = [
            r
            for r in c["rules"]
            if (not severity or r["severity"] == severity)
            and all(w in f"{r['code']} {r['title']} {r['logic']}".casefold() for w in words)
        ]
        tiers = [t.name for t in rs.meta.severities]
        return HTMLResponse(
            env.get_template("rules.html").render(c=c, shown=shown, q=q, severity=severity, tiers=tiers)
        )

    def openapi_with_panel_schema() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            panel = PanelIn.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(panel.pop("$defs", {}))
            from interpret.web.openapi import apply

            apply(rs, components, panel)
            components["PanelIn"] = panel
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi_with_panel_schema  # type: ignore[method-assign]

    from interpret.web.cds_hooks import FeedbackTally
    from interpret.web.cds_hooks import router as cds_router
    from interpret.web.fhir_client import FhirServerAccess

    app.state.cds_feedback = FeedbackTally()
    app.state.fhir_access = FhirServerAccess(allowed=tuple(fhir_servers or ()))

    app.include_router(cds_router)
    if cds_clients:  # inside CORS, so that a browser client can read the refusal
        app.add_middleware(TrustedClientsOnly, verifier=ClientVerifier(cds_clients), public_url=public_url)

    from interpret.web.batch_upload import router as batch_router

    app.include_router(batch_router)

    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type"],
        )
    from interpret.web.security import BodyLimit, JsonBodies, SecurityHeaders

    cds_limit = int(os.environ.get("INTERPRET_CDS_BODY_LIMIT") or CDS_BODY_LIMIT)
    limits = (("/cds-services", cds_limit), *((p, UPLOAD_LIMIT) for p in UPLOAD_PATHS))
    app.add_middleware(JsonBodies, paths=JSON_PATHS)
    app.add_middleware(BodyLimit, default=BODY_LIMIT, limits=limits, streamed=UPLOAD_PATHS)
    app.add_middleware(SecurityHeaders)
    return app


RULES_ENV, CORS_ENV, CDS_TRUST_ENV = "INTERPRET_RULES", "INTERPRET_CORS_ORIGINS", "INTERPRET_CDS_TRUST"
FHIR_SERVERS_ENV, PUBLIC_URL_ENV = "INTERPRET_FHIR_SERVERS", "INTERPRET_PUBLIC_URL"


def app_from_environment() -> FastAPI:
    """The app for each worker process of `interpret serve --workers N` (uvicorn's factory):
    the command passes its options through the environment, as uvicorn starts workers by name."""
    from pathlib import Path

    from interpret.ruleset import load_ruleset

    rules = os.environ.get(RULES_ENV)
    interpreter = Interpreter(load_ruleset(Path(rules)) if rules else None)
    trust = [TrustedClient.parse(option) for option in json.loads(os.environ.get(CDS_TRUST_ENV) or "[]")]
    application = create_app(
        interpreter,
        cors_origins=os.environ.get(CORS_ENV, "").split(),
        cds_clients=trust,
        fhir_servers=os.environ.get(FHIR_SERVERS_ENV, "").split(),
        public_url=os.environ.get(PUBLIC_URL_ENV) or None,
    )
    from interpret.web.server import settle_heap

    settle_heap()
    return application


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def _unprocessable(errors: list[Refusal]) -> JSONResponse:
    detail = [{"loc": e.location, "code": e.code, "msg": e.message} for e in errors]
    return JSONResponse({"detail": detail}, status_code=422)
