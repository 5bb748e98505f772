"""Pause descriptions: Markdown rendered to HTML a page or an email can insert as is.

Two layers. markdown-it-py renders with raw HTML off, so ``<script>`` or
``<img onerror=...>`` written in a description shows as text; nh3 then keeps
only an allow-list of tags and attributes and only http(s) and mailto links.
Images become links to the image (their alt text as the label): a form is no
place for remote pixels (in an email they would tell who opened it), and a dead image
leaves nothing broken behind.
"""

from __future__ import annotations

from typing import Any

import nh3
from markdown_it import MarkdownIt
from markdown_it.common.utils import escapeHtml

_TAGS = {
    "a", "p", "br", "hr", "strong", "em", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "del",
}  # fmt: skip
_ATTRIBUTES = {"a": {"href", "title"}, "th": {"style"}, "td": {"style"}, "ol": {"start"}}
_SCHEMES = {"http", "https", "mailto"}


def _image_as_link(renderer: Any, tokens: Any, idx: int, options: Any, env: Any) -> str:
    token = tokens[idx]
    src = str(token.attrGet("src") or "")
    return f'<a href="{escapeHtml(src)}">{escapeHtml(token.content or src)}</a>'


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
    "table"
)
_md.add_render_rule("image", _image_as_link)

#: The page's own headings are h1 (the run) and h2 (the pause); a description's
#: headings sit below them, so ``#`` becomes h3 and anything past h6 stays h6.
_HEADING_SHIFT = 2


def _demote_headings(state: Any) -> None:
    for token in state.tokens:
        if token.type in ("heading_open", "heading_close"):
            level = min(int(token.tag[1]) + _HEADING_SHIFT, 6)
            token.tag = f"h{level}"


_md.core.ruler.push("demote_headings", _demote_headings)


def render_markdown(text: str) -> str:
    """Safe HTML for a Markdown description."""
    html = _md.render(text)
    return nh3.clean(
        html,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        filter_style_properties={"text-align"},
    )
