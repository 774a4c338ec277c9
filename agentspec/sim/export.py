"""A notebook in, one self-contained HTML file out: images inline, no script or style fetched from a network.

nbconvert's HTML template loads require.js, MathJax, mermaid and the widget renderer from CDNs; an offline
reader (an incident review, an archive) gets none of them. Here every such URL is blanked and the empty
script tags dropped, so the file renders its tables, text and PNG charts with no network at all (widgets
show as their last text or image output).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

_CDN_TRAITS = ("jquery_url", "jupyter_widgets_base_url", "mathjax_url", "mermaid_js_url",
               "mermaid_layout_elk_js_url", "require_js_url", "widget_renderer_url")  # fmt: skip


def html(notebook: nbformat.NotebookNode | str | Path) -> str:
    """The static HTML export of a notebook (a node, or the path of an .ipynb)."""
    from nbconvert import HTMLExporter

    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(embed_images=True, **dict.fromkeys(_CDN_TRAITS, ""))
    body, _ = exporter.from_notebook_node(nb)
    return re.sub(r"<script[^>]*\ssrc=\"\"[^>]*>\s*</script>", "", body)
