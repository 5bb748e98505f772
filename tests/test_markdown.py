"""Pause descriptions: Markdown rendered on the server and cleaned before a page shows it."""

from __future__ import annotations

from hitl_bus.markdown import render_markdown


def test_markdown_becomes_html() -> None:
    html = render_markdown("**Who** are you?\n\n- one\n- two")
    assert "<strong>Who</strong>" in html
    assert "<li>one</li>" in html


def test_raw_html_and_scripts_do_not_survive() -> None:
    html = render_markdown('<script>alert(1)</script><img src=x onerror="alert(2)">hello')
    assert "<script" not in html and "<img" not in html  # shown as text, never as tags
    assert "&lt;script&gt;" in html and "hello" in html


def test_only_web_and_mail_links_are_kept() -> None:
    html = render_markdown("[a](javascript:alert(1)) [b](https://example.com) [c](mailto:x@y.z)")
    assert 'href="javascript' not in html  # left as plain text
    assert 'href="https://example.com"' in html
    assert 'href="mailto:x@y.z"' in html


def test_an_image_becomes_a_link_to_it() -> None:
    html = render_markdown("![the chart](https://example.com/chart.png)")
    assert "<img" not in html
    assert 'href="https://example.com/chart.png"' in html
