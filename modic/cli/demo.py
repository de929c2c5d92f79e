"""``modic demo [-o OUT]``: analyse a synthetic study with known Modic changes and compare with the truth.

The study comes from ``configs/synth/demo.yaml`` (its ``demo`` section gives
the seed and the planted changes), is written as DICOM to ``OUT/input`` with
its ``truth.json``, and is analysed exactly as ``modic analyze OUT/input/dicom
-o OUT/result`` would (same functions, shipped config and model). The
terminal shows the level summary, then each graded endplate's planted and
found type. Nothing here is real patient data.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modic.cli.options import output_flags
from modic.errors import ConfigError
from modic.settings import load_settings

if TYPE_CHECKING:
    from modic.synth.config import SynthSettings

log = logging.getLogger("modic.cli.demo")

DEMO_CONFIG = "demo"
DEFAULT_OUTPUT = Path("modic-demo")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="analyse a synthetic study with known Modic changes and compare with the truth",
        description=(
            "Generate a synthetic sagittal lumbar spine MRI study with planted Modic changes "
            "(configs/synth/demo.yaml), write it as DICOM to OUT/input, analyse it like 'modic analyze' into "
            "OUT/result and print what was planted next to what was found. Research use only."
        ),
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"output folder (default: ./{DEFAULT_OUTPUT})")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing demo folder that modic wrote (never one holding other files)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from modic.cli.analyze import summary_text
    from modic.io.study import load_study
    from modic.pipeline import Models, analyze_images
    from modic.report.writer import check_output_folder, write_outputs
    from modic.synth import generate_study, load_synth_settings, write_study

    with output_flags():
        out = check_output_folder(Path(args.output), overwrite=args.overwrite)
    synth_config = load_synth_settings(DEMO_CONFIG)
    seed, planted = _demo_settings(synth_config)
    log.info("generating the synthetic demo study (seed %d) into %s", seed, out / "input")
    study = generate_study(seed=seed, config=synth_config, modic=planted)
    write_study(study, out / "input", formats=("dicom",), overwrite=args.overwrite)

    config = load_settings()
    images = load_study(out / "input" / "dicom")
    models = Models.load(config, device=args.device)
    analysis = analyze_images(images, models=models, config=config)
    report = write_outputs(analysis, out / "result", overwrite=args.overwrite)

    print(summary_text(report))
    print()
    print(truth_comparison(report, study.truth))
    print(f"input: {out / 'input'} (DICOM and truth.json)")
    print(f"outputs: {out / 'result'} (open report.html)")
    return 0


def _demo_settings(config: SynthSettings) -> tuple[int, list[Mapping[str, Any]]]:
    """The seed and the changes to plant of the ``demo`` section (checked when the settings were loaded)."""
    if config.demo is None:
        raise ConfigError(
            f"synth config '{config.name}' has no 'demo' section; add demo: {{seed: ..., modic: [...]}} "
            "(the seed and the changes to plant)"
        )
    return config.demo.seed, list(config.demo.modic)


def _type_text(modic_type: int, mixed: str | None) -> str:
    return mixed or str(modic_type)


def truth_comparison(report: Mapping[str, Any], truth: Mapping[str, Any]) -> str:
    """Planted versus found type for every graded or planted endplate, with counts."""
    planted = {e["name"]: _type_text(e["modic_type"], e["mixed"]) for e in truth["endplates"]}
    found = {
        e["endplate"]: _type_text(e["modic_type"], e["mixed"]) for level in report["levels"] for e in level["endplates"]
    }
    names = list(found) + [n for n, t in planted.items() if t != "0" and n not in found]
    lines = ["truth comparison (planted by the generator / found by modic):",
             f"  {'endplate':<14}{'planted':>8}{'found':>8}"]
    right = changes = changes_found = 0
    for name in names:
        expected = planted.get(name, "0")
        got = found.get(name)
        verdict = "not graded" if got is None else "ok" if got == expected else "DIFFERENT"
        right += got == expected
        if expected != "0":
            changes += 1
            changes_found += got == expected
        lines.append(f"  {name:<14}{expected:>8}{got if got is not None else '-':>8}   {verdict}")
    lines.append(
        f"  {right} of {len(names)} endplates right; "
        f"{changes_found} of {changes} planted changes found with the right type"
    )
    if right < len(names):
        lines.append("  (differences are errors of the pipeline on this study; see the model cards for measured accuracy)")
    return "\n".join(lines)

