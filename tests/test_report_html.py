"""report.html from hand-made report dictionaries: content, escaping, identifiers and the candidacy section."""

from __future__ import annotations

import copy
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from modic import RESEARCH_NOTICE
from modic.candidacy import evaluate_candidacy, load_clinical, load_policy
from modic.report.html import render_html, write_html
from modic.resources import config_file

HOSTILE = '<script>alert("x")</script><img src=http://example.invalid/x.png>'
CHROMIUM = Path("/usr/bin/chromium")


def _signal(ratio: float) -> dict[str, Any]:
    return {"ratio_median": ratio, "ratio_p25": ratio - 0.1, "ratio_p75": ratio + 0.1, "low_fraction": 0.1,
            "high_fraction": 0.2, "ratio_to_patient_marrow": 1.0}


def _endplate(name: str, modic_type: int, mixed: str | None, *, t2: bool = True) -> dict[str, Any]:
    return {
        "endplate": name, "modic_type": modic_type, "mixed": mixed, "confidence": 0.83, "method": "rules",
        "scores": {"1": 0.3, "2": 0.5, "3": 0.0},
        "extent": {"region_fraction": 0.4567, "height_fraction": 0.25},
        "signal": {"t1": _signal(1.31), "t2": _signal(1.12) if t2 else None},
        "pattern_fractions": {"1": 0.3, "2": 0.5, "3": 0.0},
        "region": {"label": 1, "voxels": 800, "size_mm3": 900.0, "depth_mm": 8.0, "body_height_mm": 27.0,
                   "reference_label": 1, "reference_voxels": 500, "measured_from_disc": True},
        "note": None if t2 else "T1 only: low T1 signal may be type 1 or type 3",
        "presence_probability": 0.6789,
    }


def _report() -> dict[str, Any]:
    series = {"role": "t1", "source": "dicom", "series_number": 3, "description": HOSTILE, "plane": "sagittal",
              "weighting": "T1", "repetition_time_ms": 550.0, "echo_time_ms": 11.0, "inversion_time_ms": None,
              "shape": [320, 320, 15], "spacing_mm": [0.6, 0.6, 4.4]}
    return {
        "schema": "modic-report", "schema_version": "1.0", "research_notice": RESEARCH_NOTICE,
        "created": "2025-01-02T03:04:05Z",
        "software": {"name": "modic", "version": "0.1.0", "python": "3.11", "torch": "2", "monai": "1"},
        "models": {"segmentation": {"bundle": "spine_seg", "version": "0.1", "sha256": "ab" * 32},
                   "classifier": {"method": "rules", "thresholds": {"t1_low": 0.8}}},
        "study": {"key": "0123456789abcdef", "single_slice": False},
        "series": {"t1": series, "t2": {**series, "role": "t2", "description": "SAG T2", "weighting": "T2"}},
        "anatomy": {"size_unit": "mm3", "vertebrae": [{"name": "L5", "kind": "vertebra", "label": 2, "size": 1.0,
                                                      "centroid_ras_mm": [0, 0, 0]}],
                    "discs": [{"name": "L4-L5", "kind": "disc", "label": 2, "size": 1.0,
                               "centroid_ras_mm": [0, 0, 0]}]},
        "levels": [
            {"level": "L4-L5", "modic_type": 1, "mixed": "1/2", "confidence": 0.83, "presence_probability": 0.7123,
             "changed": True, "endplates": [_endplate("L4 inferior", 2, "1/2"), _endplate("L5 superior", 1, None)]},
            {"level": "L5-S1", "modic_type": 2, "mixed": None, "confidence": 0.83,
             "endplates": [_endplate("L5 inferior", 2, None), _endplate("S1 superior", 0, None, t2=False)]},
        ],
        "warnings": [{"code": "low_confidence", "severity": "warning", "message": f"S1 superior: {HOSTILE}"}],
        "input_decisions": [],
        "settings": {"levels": {}, "endplates": {}, "classification": {}},
        "candidacy": None,
    }


def _text(html: str) -> str:
    """The page without its embedded pictures."""
    return re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)


def test_html_shows_levels_endplates_and_notice() -> None:
    html = render_html(_report(), {})
    assert RESEARCH_NOTICE in html
    assert html.index(RESEARCH_NOTICE) < html.index('id="level-table"'), "the notice must come first"
    for name in ("L4-L5", "L5-S1", "L4 inferior", "L5 superior", "L5 inferior", "S1 superior"):
        assert f">{name}</td>" in html
    assert 'class="type mixed"' in html and ">1/2</span>" in html
    assert "0.46" in html and "1.31" in html and "1.12" in html
    assert "probability of a change 0.71: changed" in html and ">0.68</td>" in html
    assert "T1 only: low T1 signal may be type 1 or type 3" in html
    assert "spine_seg" in html and "ab" * 32 in html


def test_html_renders_a_report_written_before_presence_probabilities() -> None:
    report = _report()
    for level in report["levels"]:
        level.pop("presence_probability", None)
        level.pop("changed", None)
        for endplate in level["endplates"]:
            endplate.pop("presence_probability")
    html = render_html(report, {})
    assert "probability of a change" not in html and ">L4 inferior</td>" in html


def test_html_escapes_header_strings() -> None:
    html = render_html(_report(), {})
    assert "<script" not in html.lower()
    assert "http://example.invalid" not in re.findall(r'src="([^"]*)"', html)
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html


def test_html_embeds_pictures(tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "sagittal_t1.png"
    Image.new("RGB", (4, 3), (255, 0, 0)).save(picture)
    path = write_html(_report(), {"sagittal_t1": picture}, tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    assert html.count('<img src="data:image/png;base64,') == 1
    assert 'id="picture-sagittal_t1"' in html


def test_identifiers_appear_only_when_kept() -> None:
    report = _report()
    assert 'id="identifiers"' not in render_html(report, {})
    report["study"].update({"study_instance_uid": "1.2.3.4", "PatientName": "DOE^JANE", "PatientID": "P123"})
    html = render_html(report, {})
    assert 'id="identifiers"' in html and "DOE^JANE" in html and "P123" in html


def _with_candidacy() -> dict[str, Any]:
    report = _report()
    clinical = load_clinical(config_file("clinical_template.yaml"))
    report["candidacy"] = evaluate_candidacy(copy.deepcopy(report), clinical, load_policy("default")).to_dict()
    return report


def test_candidacy_section() -> None:
    report = _with_candidacy()
    candidacy = report["candidacy"]
    html = render_html(report, {})
    assert f'<span class="verdict" id="candidacy-verdict">{candidacy["verdict"]}</span>' in html
    for criterion in candidacy["criteria"]:
        assert f"<strong>{criterion['id']}</strong>" in html
        assert f'class="status-{criterion["status"].replace(" ", "-")}">{criterion["status"]}</td>' in html
    for body in candidacy["target_bodies"]:
        assert body in html
    assert 'id="candidacy"' not in render_html(_report(), {})


def test_candidacy_page_renders_in_chromium(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium is not installed")
    path = write_html(_with_candidacy(), {}, tmp_path / "report.html")
    result = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", path.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    dom = _text(result.stdout)
    assert 'id="criteria-table"' in dom and 'id="level-table"' in dom, result.stderr[-2000:]
    assert "<script>alert" not in dom


def test_html_names_the_thin_slice_bundle_and_whether_it_was_used() -> None:
    report = _report()
    report["models"]["segmentation"]["thin_slice"] = {"bundle": "spine_seg_thin", "version": "0.1", "sha256": "cd" * 32,
                                                      "max_spacing_mm": 2.0, "used": True}
    text = _text(render_html(report, {}))
    assert "<dt>segmentation of thin-slice volumes</dt>" in text
    assert "bundle: spine_seg_thin" in text and "cd" * 32 in text and "used: True" in text
    assert "<dt>segmentation of thin-slice volumes</dt>" not in _text(render_html(_report(), {}))
