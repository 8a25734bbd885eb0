"""The HTML pages load nothing from other hosts and carry no live-code machinery.

Jupyter Book v1 always loads sphinx-thebe, which puts on every page a script naming thebe's remote bundle
(declared twice, so the browser reports a SyntaxError), its script and stylesheet, and a Binder configuration for
a repository that is not this book's. The book has no launch buttons (`launch_buttons` in _config.yml): this
extension takes all of that out of the HTML. MathJax is served from the book's own static files (_config.yml,
`mathjax_path`); tests/test_html_offline.py checks the result in a browser with the network off.
"""

from __future__ import annotations

from docutils import nodes

THEBE_MARKERS = ("THEBE_JS_URL", "x-thebe-config", "kernelName =")


def _is_thebe(asset) -> bool:
    name = str(getattr(asset, "filename", "") or "")
    body = str(getattr(asset, "attributes", {}).get("body", ""))
    return "thebe" in name or any(marker in body for marker in THEBE_MARKERS)


def drop_thebe_nodes(app, doctree, docname) -> None:
    for raw in list(doctree.findall(nodes.raw)):
        if any(marker in raw.astext() for marker in THEBE_MARKERS):
            raw.parent.remove(raw)


def drop_thebe_assets(app, pagename, templatename, context, doctree) -> None:
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [asset for asset in context[key] if not _is_thebe(asset)]


def setup(app):
    # After sphinx-thebe's own handlers (priority 500), which add what is removed here.
    app.connect("doctree-resolved", drop_thebe_nodes, priority=900)
    app.connect("html-page-context", drop_thebe_assets, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
