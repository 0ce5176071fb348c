"""The review web app: server-rendered pages (FastAPI + Jinja2, autoescaped), one small vendored script for the
keyboard and the live category search, nothing loaded from the internet.

Every POST carries the page's CSRF token and is refused from another origin; with a token configured (any host
beyond loopback), every request must carry it (the printed address sets it as a cookie). Decisions answer JSON to
`Accept: application/json`, which the benchmark and the replay use.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from tagger.review.categories import CategoryIndex
from tagger.review.decisions import Decision, DecisionError, allowed_values
from tagger.review.export import export
from tagger.review.store import SORTS, STATUSES, Conflict, Item, ReviewStore
from tagger.review.view import highlighted, value_rows
from tagger.taxonomy import Taxonomy

HERE = Path(__file__).parent
TOKEN_COOKIE = "tagger_review_token"  # noqa: S105 - the cookie's name
REVIEWER_COOKIE = "tagger_reviewer"
PAGE_SIZE = 50


@dataclass
class Settings:
    store: ReviewStore
    taxonomy: Taxonomy
    taxonomy_spec: str | None
    export_dir: Path
    reviewer: str = "reviewer"
    token: str | None = None  # every request must carry it when set
    allowed_hosts: set[str] | None = None  # Host headers served (against DNS rebinding); None: any
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))


@dataclass(frozen=True)
class Nav:
    """Where the reviewer is in the queue: carried by every link and form, so "next" follows their order."""

    sort: str = "confidence"
    status: str = "pending"
    q: str = ""
    attribute: str = ""
    tab: str = ""
    page: int = 0

    @classmethod
    def of(cls, request: Request) -> Nav:
        p = request.query_params
        sort = p.get("sort", "confidence")
        status = p.get("status", "pending")
        page = p.get("page", "0")
        return cls(
            sort=sort if sort in SORTS else "confidence",
            status=status if status in STATUSES else "pending",
            q=p.get("q", "")[:200],
            attribute=p.get("attribute", "")[:100],
            tab=p.get("tab", "")[:64],
            page=int(page) if page.isdigit() else 0,
        )

    def query(self, **changes: Any) -> str:
        values = {k: v for k, v in vars(replace(self, **changes)).items() if v not in ("", 0)}
        return urlencode(values)


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, dependencies=[Depends(_csrf_check(settings))])
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.autoescape = True  # every .html is escaped anyway; this makes it explicit for product text
    templates.env.filters["rid"] = _quote_id
    index = CategoryIndex(settings.taxonomy)
    store, taxonomy = settings.store, settings.taxonomy
    app.add_middleware(BaseHTTPMiddleware, dispatch=_guard(settings))
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        nav = context.get("nav") or Nav.of(request)
        base = {"progress": store.progress(), "csrf": settings.csrf, "reviewer": _reviewer(request, settings)}
        return templates.TemplateResponse(request, name, base | {"nav": nav} | context, status_code=status)

    @app.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/queue?" + Nav.of(request).query(), status_code=303)

    @app.get("/queue")
    def queue(request: Request) -> Response:
        nav = Nav.of(request)
        if not nav.tab:  # each tab gets its own id: holds and "next" are per tab
            return RedirectResponse("/queue?" + nav.query(tab=secrets.token_hex(6)), status_code=303)
        rows, total = store.queue(nav.sort, nav.status, nav.q, nav.attribute, PAGE_SIZE, nav.page * PAGE_SIZE)
        return render(request, "queue.html", nav=nav, rows=rows, total=total, page_size=PAGE_SIZE)

    @app.get("/next")
    def next_record(request: Request) -> Response:
        nav = Nav.of(request)
        rid = store.next_id(nav.sort, nav.q, nav.attribute, nav.tab or None, request.query_params.get("after"))
        return RedirectResponse(_record_url(rid, nav) if rid else "/queue?" + nav.query(), status_code=303)

    @app.get("/r/{record_id:path}")
    def record_page(request: Request, record_id: str) -> Response:
        return _record_response(request, record_id)

    def _record_response(request: Request, record_id: str, message: str = "", status: int = 200) -> Response:
        nav = Nav.of(request)
        item = store.item(record_id)
        if item is None:
            return render(request, "message.html", status=404, message=f"no record {record_id!r} in this review")
        held_by = store.hold(item.id, nav.tab, _reviewer(request, settings)) if nav.tab and item.tags else None
        context = _record_context(item, taxonomy, index, request.query_params)
        history = store.events(item.id)[-20:]
        return render(
            request, "record.html", status, nav=nav, item=item, held_by=held_by, message=message, history=history,
            **context,
        )  # fmt: skip

    @app.post("/r/{record_id:path}/decide")
    def decide(
        request: Request,
        record_id: str,
        action: str = Form(...),
        version: int = Form(...),
        attribute: str = Form(""),
        value: str = Form(""),
        new_value: str = Form(""),
    ) -> Response:
        nav = Nav.of(request)
        decision = Decision(action, attribute or None, value or None, new_value or None)
        try:
            tags, new_version = store.decide(
                record_id, decision, taxonomy, _reviewer(request, settings), version, nav.tab or None
            )
        except (Conflict, DecisionError) as exc:
            code = 409 if isinstance(exc, Conflict) else 400
            if _wants_json(request):
                return JSONResponse({"error": str(exc)}, status_code=code)
            return _record_response(request, record_id, str(exc), code)
        moves_on = action in ("accept", "reject")
        following = store.next_id(nav.sort, nav.q, nav.attribute, nav.tab or None, record_id) if moves_on else None
        if _wants_json(request):
            return JSONResponse({"id": record_id, "version": new_version, "tags": tags.to_json(), "next": following})
        if moves_on:
            return RedirectResponse(_record_url(following, nav) if following else "/queue?" + nav.query(), 303)
        return RedirectResponse(_record_url(record_id, nav), status_code=303)

    @app.post("/undo")
    def undo(request: Request) -> Response:
        nav = Nav.of(request)
        try:
            rid = store.undo(_reviewer(request, settings), nav.tab or None)
        except Conflict as exc:
            if _wants_json(request):
                return JSONResponse({"error": str(exc)}, status_code=409)
            return render(request, "message.html", status=409, message=str(exc))
        if _wants_json(request):
            return JSONResponse({"undone": rid})
        return RedirectResponse(_record_url(rid, nav) if rid else "/queue?" + nav.query(), status_code=303)

    @app.post("/reviewer")
    def set_reviewer(request: Request, name: str = Form(...)) -> Response:
        response = RedirectResponse("/queue?" + Nav.of(request).query(), status_code=303)
        clean = " ".join(name.split())[:60]
        if clean:
            response.set_cookie(REVIEWER_COOKIE, clean, httponly=True, samesite="strict")
        return response

    @app.post("/export")
    def export_page(request: Request) -> Response:
        summary = export(store, settings.export_dir, settings.taxonomy_spec)
        if _wants_json(request):
            return JSONResponse({k: str(v) for k, v in vars(summary).items()})
        return render(request, "export.html", summary=summary)

    @app.get("/api/categories")
    def categories(q: str = "", limit: int = 30) -> JSONResponse:
        hits = index.search(q[:200], max(1, min(limit, 100)))
        return JSONResponse([{"id": cid, "path": path} for cid, path in hits])

    @app.get("/api/record/{record_id:path}")
    def record_json(record_id: str) -> JSONResponse:
        item = store.item(record_id)
        if item is None:
            return JSONResponse({"error": f"no record {record_id!r}"}, status_code=404)
        tags = item.tags.to_json() if item.tags else None
        return JSONResponse({"id": item.id, "kind": item.kind, "version": item.version, "tags": tags})

    return app


def _record_context(item: Item, taxonomy: Taxonomy, index: CategoryIndex, params: Any) -> dict[str, Any]:
    if item.tags is None or item.record is None:
        return {}
    tags = item.tags
    allowed = allowed_values(taxonomy, tags.category)
    category = taxonomy.categories.get(tags.category)
    adding = params.get("add", "")
    return {
        "fields": highlighted(item.product, item.record, tags.attributes) if item.product else [],
        "values": value_rows(item.record, tags.attributes),
        "allowed": allowed,
        "attribute_names": {h: taxonomy.attributes[h].name for h in allowed},
        "category_path": category.full_path if category else tags.category,
        "category_known": category is not None,
        "category_changed": tags.category != (item.original.category if item.original else tags.category),
        "category_info": item.record.get("category") or {},
        "adding": adding if adding in allowed else "",
        "cat_q": params.get("cat_q", "")[:200],
        "cat_hits": index.search(params["cat_q"]) if params.get("cat_q") else [],
    }


def _quote_id(record_id: str) -> str:
    return quote(record_id, safe="")


def _record_url(record_id: str, nav: Nav) -> str:
    return f"/r/{_quote_id(record_id)}?" + nav.query(page=0)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _reviewer(request: Request, settings: Settings) -> str:
    return request.cookies.get(REVIEWER_COOKIE) or settings.reviewer


def _guard(settings: Settings) -> Any:
    """Token, host and origin checks before any route, and headers that keep the page self-contained."""

    async def dispatch(request: Request, call_next: RequestResponseEndpoint) -> Response:
        host = request.headers.get("host", "")
        if settings.allowed_hosts is not None and host not in settings.allowed_hosts:
            return Response("unknown host", status_code=421)
        from_query = request.query_params.get("token")
        if settings.token is not None and not _carries_token(request, settings.token):
            return Response("a token is required: open the address the server printed", status_code=401)
        if request.method == "POST":
            origin = request.headers.get("origin")
            if origin and origin != "null" and urlsplit(origin).netloc != host:
                return Response("cross-site request refused", status_code=403)
        response = await call_next(request)
        if settings.token is not None and from_query:
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        return response

    return dispatch


def _csrf_check(settings: Settings) -> Any:
    """Every POST carries the page's token (a form field, or the X-CSRF-Token header): another site cannot read it.
    A dependency, not middleware: FastAPI then parses the form once for this check and the route alike."""

    async def check(request: Request) -> None:
        if request.method != "POST":
            return
        form = await request.form()
        sent = form.get("csrf") or request.headers.get("x-csrf-token") or ""
        if not isinstance(sent, str) or not hmac.compare_digest(sent, settings.csrf):
            raise HTTPException(403, "missing or wrong CSRF token: reload the page")

    return check


def _carries_token(request: Request, token: str) -> bool:
    header = request.headers.get("authorization", "")
    sent = [
        request.cookies.get(TOKEN_COOKIE, ""),
        request.query_params.get("token", ""),
        header.removeprefix("Bearer ") if header.startswith("Bearer ") else "",
    ]
    return any(s and hmac.compare_digest(s, token) for s in sent)
