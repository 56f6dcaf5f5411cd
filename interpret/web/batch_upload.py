"""CSV upload on the web: the same code path as `interpret batch`, answered with a ZIP.

The ZIP holds the output CSV, its `.json` sidecar (ruleset version and hash, mapping,
counts) and the summary page. Uploads are size-limited (web.security.BodyLimit), written to
a private temporary folder that is removed after the response, and never logged.
"""

from __future__ import annotations

import io
import tempfile
import threading
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from interpret.batch.job import BatchOptions, execute
from interpret.batch.read import DECOMPRESS_LIMIT, BatchInputError
from interpret.pipeline import Interpreter
from interpret.render import environment

router = APIRouter(include_in_schema=False)

# An upload runs in a worker thread, one at a time, so the event loop keeps answering every
# other request (CDS Hooks calls included) while a file is interpreted; a compressed upload
# may expand to this much at most.
UPLOAD_DECOMPRESS_LIMIT = 2**30
ONE_AT_A_TIME = threading.Lock()


def _page(request: Request, error: str | None = None, status: int = 200) -> HTMLResponse:
    interpreter: Interpreter = request.app.state.interpreter
    html = (
        environment().get_template("batch_form.html").render(disclaimer=interpreter.ruleset.disclaimer(), error=error)
    )
    return HTMLResponse(html, status_code=status)


@router.get("/batch", response_class=HTMLResponse)
def batch_form(request: Request) -> HTMLResponse:
    return _page(request)


@router.post("/batch")
async def batch_upload(request: Request) -> Response:
    interpreter: Interpreter = request.app.state.interpreter
    origin = request.headers.get("origin")
    if origin and (origin == "null" or urlsplit(origin).netloc != request.url.netloc):  # another site's form
        return _page(request, "Uploads are accepted from this site's own form only.", 403)
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str) or not upload.filename:
        return _page(request, "Choose a CSV file to upload.", 422)
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    units = [u.strip() for u in fields.get("units", "").replace(",", " ").split() if u.strip()]
    allow = [a.strip() for a in fields.get("allow", "").split(",") if a.strip()]
    with tempfile.TemporaryDirectory(prefix="interpret-upload-") as folder:
        root = Path(folder)
        source = root / "input.csv"
        source.write_bytes(await upload.read())
        output = root / "output.csv"
        try:
            options = BatchOptions(
                units=tuple(units),
                id_column=fields.get("id_column") or None,
                allow=tuple(allow),
                summary=root / "summary.html",
            )
            await run_in_threadpool(_run, interpreter, source, output, options)
        except BatchInputError as exc:
            return _page(request, str(exc).replace(str(source), upload.filename), 422)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for name in ("output.csv", "output.csv.json", "summary.html"):
                archive.write(root / name, name)
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="interpretation.zip"'},
    )


def _run(interpreter: Interpreter, source: Path, output: Path, options: BatchOptions) -> None:
    """The batch run of one upload, in a worker thread, one upload at a time."""
    with ONE_AT_A_TIME:
        token = DECOMPRESS_LIMIT.set(UPLOAD_DECOMPRESS_LIMIT)
        try:
            execute(interpreter.ruleset, source, output, options)
        finally:
            DECOMPRESS_LIMIT.reset(token)
