"""Which Modic changes (and Schmorl nodes) to plant at which endplates.

Endplates are named like a radiologist names them, counting vertebrae from
the bottom (S1, L5, L4, ...): ``"L4 inferior"``, ``"S1 superior"``. Types
follow the signal definitions relative to normal marrow: 1 oedema (T1 low,
T2 and STIR high), 2 fat (T1 high, T2 iso to high, STIR low), 3 sclerosis
(T1 and T2 low); ``"1/2"`` and ``"2/3"`` are mixed bands, the first type next
to the endplate and the second deeper in the body.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modic.errors import UsageError

MIXED_TYPES = ("1/2", "2/3")
_ENDPLATE = re.compile(r"^\s*([A-Za-z]{1,2}\d{1,2})\s+(superior|inferior)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class ModicSpec:
    """One planted endplate change.

    Attributes:
        endplate: ``"<vertebra> <superior|inferior>"``, vertebra named counting from S1 upwards.
        modic_type: 1, 2 or 3; for a mixed band the larger of its two types.
        mixed: ``"1/2"``, ``"2/3"`` or None.
        depth_fraction: band depth as a fraction of the vertebral body height (None: drawn from the config).
        ap_fraction: band length as a fraction of the body's anterior-posterior depth (None: drawn).
        schmorl_node: also plant a Schmorl node (disc herniated into this endplate).
    """

    endplate: str
    modic_type: int
    mixed: str | None = None
    depth_fraction: float | None = None
    ap_fraction: float | None = None
    schmorl_node: bool = False

    def __post_init__(self) -> None:
        vertebra, side = split_endplate(self.endplate)
        object.__setattr__(self, "endplate", f"{vertebra} {side}")
        if self.mixed is not None:
            if self.mixed not in MIXED_TYPES:
                raise UsageError(
                    f"mixed Modic type {self.mixed!r} is not supported; use one of {', '.join(MIXED_TYPES)}"
                )
            expected = max(int(t) for t in self.mixed.split("/"))
            if self.modic_type != expected:
                raise UsageError(
                    f"Modic type {self.modic_type} does not match mixed type {self.mixed!r}; a mixed band's "
                    f"type is the larger of its two types ({expected})"
                )
        elif self.modic_type not in (1, 2, 3):
            raise UsageError(f"Modic type {self.modic_type!r} at {self.endplate} must be 1, 2, 3, '1/2' or '2/3'")
        for name in ("depth_fraction", "ap_fraction"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value <= 1.0:
                raise UsageError(f"{name} {value!r} at {self.endplate} must be in (0, 1]")

    @property
    def vertebra(self) -> str:
        return self.endplate.split()[0]

    @property
    def side(self) -> str:
        return self.endplate.split()[1]

    @property
    def parts(self) -> tuple[int, ...]:
        """Types of the band from the endplate inwards (one entry unless mixed)."""
        return tuple(int(t) for t in self.mixed.split("/")) if self.mixed else (self.modic_type,)


def split_endplate(name: str) -> tuple[str, str]:
    """``"l4 Inferior"`` -> ``("L4", "inferior")``; raises UsageError for anything else."""
    match = _ENDPLATE.match(name)
    if not match:
        raise UsageError(
            f"endplate {name!r} is not understood; write the vertebra and side, e.g. 'L4 inferior' or 'S1 superior'"
        )
    return match.group(1).upper(), match.group(2).lower()


def parse_type(value: object, *, endplate: str) -> tuple[int, str | None]:
    """A type given as 1, "2", "1/2" ... -> (modic_type, mixed)."""
    text = str(value).strip()
    if text in MIXED_TYPES:
        return max(int(t) for t in text.split("/")), text
    if text in ("1", "2", "3"):
        return int(text), None
    raise UsageError(f"Modic type {value!r} at {endplate} must be 1, 2, 3, '1/2' or '2/3'")


def parse_modic(
    modic: str | Mapping[str, object] | Sequence[ModicSpec | Mapping[str, object]],
) -> list[ModicSpec]:
    """Normalise the ways a caller can say which changes to plant.

    Accepts ``"L4 inferior:1,L5 superior:1/2"``, ``{"L4 inferior": 1}``, or a
    list of :class:`ModicSpec` or of mappings with ModicSpec's fields (``type``
    is accepted for ``modic_type``). An empty value plants nothing.
    """
    specs: list[ModicSpec] = []
    if isinstance(modic, str):
        for item in filter(None, (part.strip() for part in modic.split(","))):
            if ":" not in item:
                raise UsageError(f"Modic change {item!r} needs a type: write e.g. 'L4 inferior:1'")
            endplate, value = item.rsplit(":", 1)
            modic_type, mixed = parse_type(value, endplate=endplate.strip())
            specs.append(ModicSpec(endplate=endplate, modic_type=modic_type, mixed=mixed))
    elif isinstance(modic, Mapping):
        for endplate, value in modic.items():
            modic_type, mixed = parse_type(value, endplate=str(endplate))
            specs.append(ModicSpec(endplate=str(endplate), modic_type=modic_type, mixed=mixed))
    else:
        for item in modic:
            if isinstance(item, ModicSpec):
                specs.append(item)
                continue
            if not isinstance(item, Mapping) or "endplate" not in item:
                raise UsageError(f"Modic change {item!r} must be a ModicSpec or a mapping with an 'endplate'")
            fields = dict(item)
            raw_type = fields.pop("type", fields.pop("modic_type", None))
            if raw_type is None:
                raise UsageError(f"Modic change at {fields['endplate']!r} needs a 'type'")
            modic_type, mixed = parse_type(fields.pop("mixed", None) or raw_type, endplate=str(fields["endplate"]))
            try:
                specs.append(ModicSpec(modic_type=modic_type, mixed=mixed, **fields))
            except TypeError as exc:
                raise UsageError(f"Modic change {item!r} has an unknown field: {exc}") from None
    seen: set[str] = set()
    for spec in specs:
        if spec.endplate in seen:
            raise UsageError(f"endplate {spec.endplate!r} is given more than once")
        seen.add(spec.endplate)
    return specs
