"""report.html beside report.md, from the same Markdown: Python-Markdown renders it, a Jinja2 template wraps it.

The page is self-contained: every local image becomes a ``data:`` URI, a Content-Security-Policy forbids any
fetch or script, and the print style starts each section on a new page (print to PDF from the browser).
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Sequence
from pathlib import Path
from xml.etree.ElementTree import Element

import markdown
from jinja2 import Environment, PackageLoader, select_autoescape
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from markupsafe import Markup

TEMPLATE = "report.html.j2"
REPORT_FILES = ("report.md", "report.html")


class _Embed(Treeprocessor):
    """Local images -> data URIs (a missing one is an error naming it); the synthetic statement gets its class."""

    def __init__(self, md: markdown.Markdown, base: Path) -> None:
        super().__init__(md)
        self.base = base

    def run(self, root: Element) -> None:
        for img in root.iter("img"):
            src = img.get("src", "")
            if src.startswith("data:"):
                continue
            if "://" in src or src.startswith("//"):
                raise ValueError(f"report.html: image {src!r} is not a local file; the page must be self-contained")
            path = self.base / src
            if not path.is_file():
                raise FileNotFoundError(f"{path}: image linked from the report not found")
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            img.set("src", f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}")
        for p in root.iter("p"):
            kids = list(p)
            if len(kids) == 1 and kids[0].tag == "strong" and "SYNTHETIC" in "".join(kids[0].itertext()):
                p.set("class", "synthetic")


class _EmbedExtension(Extension):
    def __init__(self, base: Path) -> None:
        super().__init__()
        self.base = base

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        md.treeprocessors.register(_Embed(md, self.base), "liver_mm_embed", 0)


def render_html(text: str, base: Path, title: str) -> str:
    """The HTML page of Markdown ``text`` whose images are files under ``base``."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists", "toc", _EmbedExtension(base)],
                             output_format="html")
    env = Environment(loader=PackageLoader("liver_mm.study.report", "templates"), autoescape=select_autoescape(["j2"]))
    return env.get_template(TEMPLATE).render(title=title, body=Markup(body))  # noqa: S704 (Markdown's output)


def files_section(out: Path, skip: Sequence[str] = REPORT_FILES) -> list[str]:
    """The report's closing list of the folder's files (report.html first), each linked."""
    listed = sorted(p.name for p in out.iterdir() if p.is_file() and p.name not in skip and not p.name.startswith("."))
    return ["## Files", "", "- [report.html](report.html): this report as one page (figures embedded)",
            *(f"- [{name}]({name})" for name in listed), ""]


def write_both(out: Path, lines: Sequence[str], title: str, html_name: str = "report.html") -> Path:
    """report.md (``lines`` + the files list) and ``html_name`` rendered from the same text; returns report.md."""
    text = "\n".join([*lines, *files_section(out)])
    path = out / "report.md"
    path.write_text(text, encoding="utf-8")
    (out / html_name).write_text(render_html(text, out, title), encoding="utf-8")
    return path


def write_html(out: Path, lines: Sequence[str], title: str, name: str) -> Path:
    """A page ``name`` in ``out`` of Markdown ``lines`` only (e.g. table3.html for the MLflow UI)."""
    path = out / name
    path.write_text(render_html("\n".join(lines), out, title), encoding="utf-8")
    return path
