"""Security headers on every response, set by one ASGI middleware.

The pages are served as static scripts and styles from this origin, so the
Content-Security-Policy allows only those: no inline script, no inline style
element, nothing loaded from elsewhere, and no framing by other sites. The one
inline style the UI shows is a table column's alignment in a rendered pause
description (``style="text-align:..."``, the only style the sanitizer keeps);
those three exact attribute values are allowed by hash and nothing else is.
``/docs`` is served the same way (Swagger UI's files from ``fastapi-offline``),
so the same policy covers it.
"""

from __future__ import annotations

import base64
import hashlib

from secure import (
    ContentSecurityPolicy,
    ReferrerPolicy,
    Secure,
    XContentTypeOptions,
    XFrameOptions,
)
from secure.middleware import SecureASGIMiddleware

#: The style attributes a sanitized description can hold (markdown table alignment).
ALIGNMENT_STYLES = ("text-align:left", "text-align:center", "text-align:right")


def _hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


CSP = (
    ContentSecurityPolicy()
    .default_src("'none'")
    .script_src("'self'")
    .style_src("'self'")
    .style_src_attr("'unsafe-hashes'", *map(_hash, ALIGNMENT_STYLES))
    .img_src("'self'", "data:")
    .font_src("'self'")
    .connect_src("'self'")
    .form_action("'self'")
    .base_uri("'none'")
    .frame_ancestors("'none'")
)

SECURITY_HEADERS = Secure(
    csp=CSP,
    xcto=XContentTypeOptions(),
    referrer=ReferrerPolicy().same_origin(),
    xfo=XFrameOptions().deny(),  # frame-ancestors for browsers that predate it
)

__all__ = ["SECURITY_HEADERS", "SecureASGIMiddleware"]
