"""``report.html``: a self-contained page a radiologist can read, rendered from report.json.

Everything the page needs is inside it: pictures as base64 ``data:`` URIs and
an inline style sheet; it loads nothing and runs no script (its Content
Security Policy forbids both). Every value is escaped by Jinja2's autoescape,
since header strings such as SeriesDescription come from the input files. The
page shows only what report.json holds, so identifiers appear only when the
report was built with ``--keep-identifiers``.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modic import atomic
from modic.report.figures import MODIC_COLOURS, UNDETERMINED_COLOUR
from modic.results import UNDETERMINED

TEMPLATE_FOLDER = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
PICTURE_CAPTIONS = {
    "sagittal_t1": "Sagittal T1 through the graded vertebrae",
    "sagittal_t2": "Sagittal T2 (on the T1 grid) through the graded vertebrae",
    "montage_t1": "T1 slices holding endplate bands (lateral extent)",
}
"""Caption of each picture of :func:`modic.report.figures.write_figures`, in page order."""
STUDY_FIELDS = ("key", "single_slice")
"""Keys of report["study"] that are not identifiers; any other key was kept with --keep-identifiers."""


def write_html(report: Mapping[str, Any], pictures: Mapping[str, Path], path: str | Path) -> Path:
    """Render ``report`` (a report.json dictionary) with ``pictures`` (name -> PNG) to ``path`` atomically."""
    path = Path(path)
    atomic.write_text(path, render_html(report, pictures))
    return path


def render_html(report: Mapping[str, Any], pictures: Mapping[str, Path]) -> str:
    """The page as a string (see :func:`write_html`)."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_FOLDER),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["number"] = _number
    environment.filters["compact"] = _compact
    template = environment.get_template(TEMPLATE)
    ordered = [name for name in PICTURE_CAPTIONS if name in pictures] + sorted(set(pictures) - set(PICTURE_CAPTIONS))
    images = [
        {
            "name": name,
            "caption": PICTURE_CAPTIONS.get(name, name),
            "data": base64.b64encode(Path(pictures[name]).read_bytes()).decode("ascii"),
        }
        for name in ordered
    ]
    study = report["study"]
    identifiers = {key: value for key, value in study.items() if key not in STUDY_FIELDS}
    return template.render(
        report=report,
        study=study,
        identifiers=identifiers,
        pictures=images,
        colours={
            str(t): "#{:02x}{:02x}{:02x}".format(*rgb)
            for t, rgb in (*MODIC_COLOURS.items(), (UNDETERMINED, UNDETERMINED_COLOUR))
        },
        candidacy=report.get("candidacy"),
    )


def _number(value: Any, digits: int = 2) -> str:
    """A float with ``digits`` decimals; an em dash for a missing value."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.{digits}f}"


def _compact(value: Any) -> str:
    """Evidence values on one line: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), sort_keys=True)
