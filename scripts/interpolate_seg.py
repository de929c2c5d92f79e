"""Blend two segmentation bundles of one network in weight space and write the result as a bundle.

A longer fine-tuning fits the 1 mm training volumes better but can lose what
the starting weights did well on inputs it sees less of (8-bit single
slices, thick clinical slices). Linear interpolation between the starting
and the fine-tuned weights (weight-space ensembling; Wortsman et al.,
"Robust fine-tuning of zero-shot models", CVPR 2022) trades the two off with
one number and costs nothing at inference. Both bundles must come from the
same starting weights (one fine-tuned from the other), or the average of
their weights means nothing.

The blend keeps the ``--base`` bundle's inference settings (preprocessing and
calibration) and records the blend in ``configs/metadata.json``; re-check the
calibration with ``scripts/calibrate_seg.py`` before shipping it. Only the
weights and configs are written: a model card stays where it is.

Usage:
    python scripts/interpolate_seg.py --base models/spine_seg --tuned RUN/bundle --alpha 0.5 --out DIR
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from modic.bundles import read_bundle, write_bundle
from modic.errors import ModelError


def blend_state_dicts(
    base: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor], *, alpha: float
) -> dict[str, torch.Tensor]:
    """``(1 - alpha) * base + alpha * tuned`` for every tensor; both must have the same keys and shapes."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
    if base.keys() != tuned.keys():
        differing = sorted(set(base) ^ set(tuned))
        raise ValueError(f"the bundles hold different networks: keys only in one of them: {differing[:5]}")
    blended = {}
    for name, start in base.items():
        end = tuned[name]
        if start.shape != end.shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(start.shape)} in --base, {tuple(end.shape)} in --tuned")
        blended[name] = torch.lerp(start.float(), end.float(), alpha).to(start.dtype) if start.is_floating_point() else start
    return blended


def write_blend(*, base: Path, tuned: Path, alpha: float, out: Path) -> Path:
    """Write the blend's weights, ``inference.json`` (``base``'s) and ``metadata.json`` to ``out``."""
    start, end = read_bundle(base), read_bundle(tuned)
    network = start.network
    network.load_state_dict(blend_state_dicts(network.state_dict(), end.network.state_dict(), alpha=alpha))
    inference = read_inference(base)
    metadata = {key: value for key, value in start.metadata.items() if key != "modic_model_sha256"}
    metadata["modic_weight_blend"] = {"base": str(base), "tuned": str(tuned), "alpha": alpha}
    return write_bundle(out, network=network, network_def=inference["network_def"], settings=start.settings,
                        metadata=metadata, inferer=inference.get("inferer"))


def read_inference(bundle: Path) -> dict[str, Any]:
    """The bundle's ``configs/inference.json`` (already checked by :func:`read_bundle`)."""
    return json.loads((bundle / "configs" / "inference.json").read_text(encoding="utf-8"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, required=True, help="bundle the fine-tuning started from")
    parser.add_argument("--tuned", type=Path, required=True, help="fine-tuned bundle of the same network")
    parser.add_argument("--alpha", type=float, required=True, help="share of --tuned, 0 (base) to 1 (tuned)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the blended bundle to")
    args = parser.parse_args()
    try:
        write_blend(base=args.base, tuned=args.tuned, alpha=args.alpha, out=args.out)
    except (ModelError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({1 - args.alpha:g} x {args.base} + {args.alpha:g} x {args.tuned})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
