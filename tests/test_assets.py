"""The UI's built assets: built from the sources as they are now, and sent precompressed."""

from __future__ import annotations

import gzip
import re

import httpx
import orjson
import pytest

from hitl_bus.web.assets import BUILT, ENTRIES, MANIFEST, source_digest
from tests.web import log_in


def test_the_bundles_were_built_from_the_sources_as_they_are_now() -> None:
    manifest = orjson.loads(MANIFEST.read_bytes())
    assert manifest["sources"] == source_digest(), (
        "hitl_bus/web/static changed since the bundles were built: run `make assets`"
    )
    for name in ENTRIES:
        packed = (BUILT / f"{name}.gz").read_bytes()
        assert gzip.decompress(packed) == (BUILT / name).read_bytes(), name


@pytest.mark.usefixtures("bus_url")
async def test_a_page_loads_its_bundle_sent_gzipped_and_named_by_build(
    app: httpx.AsyncClient,
) -> None:
    await log_in(app)
    page = (await app.get("/runs/00000000-0000-4000-8000-000000000000")).text
    urls = re.findall(r'(?:src|href)="(/static/built/[^"]+)"', page)
    assert sorted(u.split("?")[0] for u in urls) == [
        "/static/built/app.css",
        "/static/built/run.js",
    ]
    digest = orjson.loads(MANIFEST.read_bytes())["sources"]
    for url in urls:
        assert url.endswith(f"?v={digest}")
        sent = await app.get(url, headers={"Accept-Encoding": "gzip"})
        assert sent.status_code == 200
        assert sent.headers["content-encoding"] == "gzip"
        assert sent.content == (BUILT / url.split("/")[-1].split("?")[0]).read_bytes()
        again = await app.get(url, headers={"If-None-Match": sent.headers["etag"]})
        assert again.status_code == 304
    plain = await app.get("/static/built/run.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["content-type"].startswith("text/javascript")
    assert (await app.get("/static/built/manifest.json")).status_code == 404
