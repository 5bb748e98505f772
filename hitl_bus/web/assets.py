"""The UI's built assets: one minified script per page and the stylesheet, sent precompressed.

The scripts under ``static/`` are ES modules, readable and commented; ``make assets``
bundles each page's module with what it imports (esbuild), minifies it (terser; CSS by
esbuild) and writes ``static/built/`` with a gzip copy of each file made by zopfli, which
packs tighter than on-the-fly gzip and costs nothing per request. ``manifest.json`` records
a digest of the sources the files were built from: the tests compare it with the sources
now, so a change to a script that was not rebuilt fails there rather than in a browser.

Pages name an asset through :func:`asset_url`, which adds the build's digest, so a browser
never mixes a cached old bundle with a new page.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Final

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

STATIC: Final = Path(__file__).parent / "static"
BUILT: Final = STATIC / "built"
MANIFEST: Final = BUILT / "manifest.json"
#: The page scripts bundled (each with what it imports) and the stylesheet.
ENTRIES: Final = ("run.js", "runs.js", "answer.js", "app.css")
_TYPES: Final = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


def source_digest(static: Path = STATIC) -> str:
    """A digest of every source the bundles are built from (the modules and the stylesheet)."""
    digest = hashlib.sha256()
    for path in sorted([*static.glob("*.js"), *static.glob("*.css")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@functools.cache
def _manifest() -> dict[str, str]:
    loaded: dict[str, str] = orjson.loads(MANIFEST.read_bytes())
    return loaded


def asset_url(name: str) -> str:
    """Where a page loads ``name`` (one of :data:`ENTRIES`): its bundle, named by build."""
    return f"/static/built/{name}?v={_manifest()['sources']}"


async def _serve(request: Request) -> Response:
    name = request.path_params["name"]
    if name not in ENTRIES:
        return Response("Not Found", status_code=404, media_type="text/plain")
    path = BUILT / name
    etag = f'"{_manifest()["sources"]}"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    media_type = _TYPES[path.suffix]
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(_read(path.with_name(name + ".gz")), media_type=media_type, headers=headers)
    return Response(_read(path), media_type=media_type, headers=headers)


@functools.cache
def _read(path: Path) -> bytes:
    return path.read_bytes()


route = Route("/static/built/{name}", _serve, methods=["GET", "HEAD"])
