"""Build ``hitl_bus/web/static/built/`` from the UI's sources (``make assets``).

Each page script is bundled with what it imports (esbuild), then minified (terser, whose
output packs a little tighter than esbuild's); the stylesheet is minified by esbuild. Every
file also gets a ``.gz`` twin made by zopfli, which the server sends as is. Needs ``npx``
(Node.js) and the ``zopfli`` package (the dev extra); the tools' versions are pinned here.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import orjson
import zopfli.gzip

from hitl_bus.web.assets import BUILT, ENTRIES, MANIFEST, STATIC, source_digest

ESBUILD = "esbuild@0.24.2"
TERSER = "terser@5.36.0"


def _npx(*args: str) -> None:
    subprocess.run(["npx", "--yes", *args], check=True)


def build() -> dict[str, int]:
    BUILT.mkdir(exist_ok=True)
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ENTRIES:
            out = BUILT / name
            if name.endswith(".js"):
                bundled = Path(tmp) / name
                _npx(
                    ESBUILD,
                    str(STATIC / name),
                    "--bundle",
                    "--format=esm",
                    "--target=es2020",
                    "--log-level=warning",
                    f"--outfile={bundled}",
                )
                _npx(
                    TERSER,
                    str(bundled),
                    "--module",
                    "--ecma",
                    "2020",
                    "--compress",
                    "passes=3,ecma=2020",
                    "--mangle",
                    "--output",
                    str(out),
                )
            else:
                _npx(
                    ESBUILD,
                    str(STATIC / name),
                    "--minify",
                    "--log-level=warning",
                    f"--outfile={out}",
                )
            packed = zopfli.gzip.compress(out.read_bytes(), numiterations=50)
            out.with_name(name + ".gz").write_bytes(packed)
            sizes[name] = len(packed)
    MANIFEST.write_bytes(
        orjson.dumps({"sources": source_digest(), "gzip_bytes": sizes}, option=orjson.OPT_INDENT_2)
        + b"\n"
    )
    return sizes


if __name__ == "__main__":
    for name, size in build().items():
        print(f"{name}: {size:,} bytes gzip", file=sys.stderr)
