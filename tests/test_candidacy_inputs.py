"""Clinical file and policy file validation: every mistake is one ConfigError naming file and field."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from modic.candidacy import FIELDS, KINDS, ClinicalFacts, Policy, load_clinical, load_policy
from modic.config import shipped_names
from modic.errors import ConfigError
from modic.resources import config_file

REPO = Path(__file__).resolve().parent.parent
TEMPLATE = REPO / "configs" / "clinical_template.yaml"


def write(tmp_path: Path, text: str, name: str = "patient.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def config_error(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_clinical(write(tmp_path, text))
    message = str(caught.value)
    assert "\n" not in message
    assert "patient.yaml" in message
    return message


# --- clinical file ---------------------------------------------------------------------------------


def test_schema_and_dataclass_agree() -> None:
    assert [f.name for f in dataclasses.fields(ClinicalFacts)] == list(FIELDS)


def test_template_covers_every_field_and_loads() -> None:
    data = yaml.safe_load(TEMPLATE.read_text())
    assert list(data) == list(FIELDS)
    loaded = load_clinical(TEMPLATE)
    assert loaded.pain_type == "axial"
    assert loaded.conservative_care == ("physical_therapy", "exercise", "nsaids", "activity_modification", "cbt")
    assert loaded.contraindications == ()
    assert loaded.vas_pain == 6.5


def test_docs_describe_every_field_kind_and_policy() -> None:
    docs = (REPO / "docs" / "candidacy.md").read_text()
    for name in FIELDS:
        assert f"| `{name}` |" in docs, name
    for kind in KINDS:
        assert f"| `{kind}` |" in docs, kind
    for policy in shipped_names("candidacy"):
        assert f"### `{policy}`" in docs, policy
        for criterion in load_policy(policy).criteria:
            assert f"| `{criterion.id}` |" in docs, (policy, criterion.id)


def test_yaml_booleans_and_nulls(tmp_path: Path) -> None:
    facts = load_clinical(
        write(tmp_path, "symptomatic_stenosis: no\nspondylolysis: yes\nskeletal_maturity: true\nodi: null\n")
    )
    assert facts.symptomatic_stenosis is False and facts.spondylolysis is True and facts.skeletal_maturity is True
    assert facts.odi is None
    assert facts.known() == {"skeletal_maturity": True, "spondylolysis": True, "symptomatic_stenosis": False}


def test_empty_file_is_all_unknown(tmp_path: Path) -> None:
    assert load_clinical(write(tmp_path, "# nothing known yet\n")) == ClinicalFacts()


def test_lists_keep_vocabulary_order_and_empty_means_none(tmp_path: Path) -> None:
    facts = load_clinical(
        write(tmp_path, "conservative_care: [cbt, nsaids, physical_therapy]\ncontraindications: []\n")
    )
    assert facts.conservative_care == ("physical_therapy", "nsaids", "cbt")
    assert facts.contraindications == ()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'pain_duration_months: "6"\n',
            r"field 'pain_duration_months' .* is '6' \(text\); expected a number from 0 to 1560 \(months\)",
        ),
        ("odi: true\n", r"field 'odi' .* is true \(a boolean\); expected a number from 0 to 100"),
        ("spondylolisthesis_grade: 1.5\n", r"field 'spondylolisthesis_grade' .* expected a whole number from 0 to 5"),
        (
            "symptomatic_stenosis: maybe\n",
            r"field 'symptomatic_stenosis' .* is 'maybe' \(text\); expected true or false",
        ),
        ("skeletal_maturity: 1\n", r"field 'skeletal_maturity' .* expected true or false"),
        (
            "conservative_care: physical_therapy\n",
            r"field 'conservative_care' .* \(text\); expected a list of physical_therapy, exercise",
        ),
        ("contraindications: {pregnancy: true}\n", r"field 'contraindications' .* \(a mapping\)"),
    ],
)
def test_wrong_types(tmp_path: Path, text: str, expected: str) -> None:
    assert re.search(expected, config_error(text, tmp_path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pain_duration_months: -3\n", r"field 'pain_duration_months' .* is -3, which is impossible"),
        ("conservative_care_months: -0.5\n", r"field 'conservative_care_months' .* is -0.5, which is impossible"),
        (
            "age_years: 131\n",
            r"field 'age_years' .* is 131, which is impossible; expected a number from 0 to 130 \(years\)",
        ),
        ("spondylolisthesis_grade: 6\n", r"field 'spondylolisthesis_grade' .* is 6, which is impossible"),
        ("vas_pain: 11\n", r"field 'vas_pain' .* is 11, which is impossible"),
        ("odi: .nan\n", r"field 'odi' .* is nan, which is impossible"),
        ("bmi: .inf\n", r"field 'bmi' .* is inf, which is impossible"),
        (
            "age_years: 30\npain_duration_months: 400\n",
            r"'pain_duration_months' is 400 months, longer than the patient's age \(30 years\)",
        ),
    ],
)
def test_impossible_values(tmp_path: Path, text: str, expected: str) -> None:
    assert re.search(expected, config_error(text, tmp_path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "pain_type: sometimes\n",
            "field 'pain_type' (type of pain) is 'sometimes'; expected one of axial, radicular, mixed",
        ),
        ("pain_type: Axial\n", "is 'Axial'; expected one of axial, radicular, mixed"),
        (
            "conservative_care: [physical_therapy, yoga]\n",
            "field 'conservative_care' (conservative treatments tried) lists 'yoga'; expected a list of physical_",
        ),
        (
            "contraindications: [pregnant]\n",
            "lists 'pregnant'; expected a list of active_infection, coagulopathy, pregnancy,",
        ),
        ("prior_lumbar_surgery_levels: [L4-5]\n", "lists 'L4-5'; expected a list of L1-L2, L2-L3, L3-L4, L4-L5, L5-S1"),
    ],
)
def test_out_of_vocabulary(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in config_error(text, tmp_path)


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = config_error("pain_duration: 12\n", tmp_path)
    assert "unknown field 'pain_duration' (did you mean 'pain_duration_months'?)" in message
    assert "accepted fields: age_years, skeletal_maturity," in message


def test_not_a_mapping_or_not_yaml(tmp_path: Path) -> None:
    assert "must hold a mapping" in config_error("- pain_type: axial\n", tmp_path)
    assert "is not valid YAML" in config_error("pain_type: [axial\n", tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_clinical(tmp_path / "absent.yaml")


# --- policies ---------------------------------------------------------------------------------------

SHIPPED = ("default", "payer_strict", "trial_intracept")


def test_shipped_policies_load_and_cite_their_sources() -> None:
    assert set(SHIPPED) <= set(shipped_names("candidacy"))
    for name in SHIPPED:
        policy = load_policy(name)
        assert policy.name == name
        assert policy.version == "1.0"
        assert policy.description
        assert policy.sources and all(source.citation for source in policy.sources)
        assert policy.level_uncertainty.downgrade_eligible is True
        assert set(policy.level_uncertainty.warning_codes) == {
            "s1_not_found",
            "s1_ambiguous",
            "s1_small",
            "merged_bodies_suspected",
            "possible_missed_vertebra",
            "transitional_vertebra_suspected",
            "reference_marrow_affected",
            "whole_body_change",
        }
        assert all(criterion.sources for criterion in policy.criteria)
        assert len(policy.target_criteria()) == 1
        path = config_file(f"candidacy/{name}.yaml")
        assert policy.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_load_policy_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(config_file("candidacy/default.yaml").read_text())
    assert load_policy(path).name == "default"
    assert load_policy(str(path)).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_unknown_policy_name_lists_the_shipped_ones() -> None:
    with pytest.raises(
        ConfigError, match=r"'nope' is neither a YAML file nor a shipped config.*default, payer_strict, trial_intracept"
    ):
        load_policy("nope")


def base_policy() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(config_file("candidacy/default.yaml").read_text()))


def policy_error(tmp_path: Path, data: dict[str, Any] | str) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"config {path}")
    return message


def edit(change: Any) -> dict[str, Any]:
    data = base_policy()
    change(data)
    return data


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def apply(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return apply


def _delete(path: tuple[Any, ...]) -> Any:
    def apply(data: dict[str, Any]) -> None:
        target = data
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return apply


MALFORMED = [
    (
        _set(("criteria", 0, "kind"), "clinical_between"),
        "criteria[0] (id 'chronic_pain'), kind: unknown kind 'clinical_between'; accepted kinds: clinical_min,",
    ),
    (_set(("colour",), "blue"), "unknown key 'colour'; known there: criteria, description, level_uncertainty,"),
    (_set(("descripton",), "x"), "unknown key 'descripton'; did you mean 'description'? (see docs/candidacy.md)"),
    (
        _set(("criteria", 0, "param"), {}),
        "unknown key 'criteria[0].param'; did you mean 'criteria[0].params'? (see docs/candidacy.md)",
    ),
    (_set(("sources", 0, "ur"), "x"), "unknown key 'sources[0].ur'; did you mean 'sources[0].url'?"),
    (
        _set(("level_uncertainty", "warning_codes"), ["s1_not_found", "s1_not_fund"]),
        "'level_uncertainty.warning_codes' is ['s1_not_found', 's1_not_fund']; expected a list of report warning "
        "codes (did you mean 's1_not_found' for 's1_not_fund'?), each one of no_vertebrae, s1_not_found,",
    ),
    (
        _set(("level_uncertainty", "downgrade"), True),
        "unknown key 'level_uncertainty.downgrade'; did you mean 'level_uncertainty.downgrade_eligible'?",
    ),
    (_delete(("sources",)), "missing required key 'sources'"),
    (_set(("sources",), []), "sources: must be a non-empty list"),
    (_delete(("level_uncertainty",)), "missing required key 'level_uncertainty'"),
    (
        _set(("level_uncertainty", "downgrade_eligible"), "sometimes"),
        "'level_uncertainty.downgrade_eligible' is 'sometimes'; expected true or false",
    ),
    (_set(("version",), 1.0), "version: 1.0 must be non-empty text; quote it"),
    (_set(("criteria",), []), "criteria: must be a non-empty list"),
    (
        _set(("criteria", 1, "role"), "preferred"),
        "criteria[1] (id 'failed_conservative_care'), role: 'preferred' is not a role; accepted: required, exclusion",
    ),
    (_delete(("criteria", 1, "params")), "criteria[1] (id 'failed_conservative_care'): missing required key 'params'"),
    (_set(("criteria", 1, "id"), "Failed Care"), "criteria[1], id: 'Failed Care' must be lower-case letters"),
    (_set(("criteria", 1, "id"), "chronic_pain"), "criteria[1], id: 'chronic_pain' is used twice"),
    (
        _set(("criteria", 1, "sources"), ["smith2020"]),
        "sources: 'smith2020' is not the id of an entry of the policy's sources",
    ),
    (
        _set(("criteria", 0, "params", "feild"), "x"),
        "params: unknown parameter 'feild' for kind 'clinical_min'; accepted: field, min, strict",
    ),
    (_delete(("criteria", 0, "params", "min")), "params: kind 'clinical_min' needs parameter 'min'"),
    (
        _set(("criteria", 0, "params", "field"), "pain_months"),
        "params.field: 'pain_months' is not a clinical field; kind 'clinical_min' accepts age_years,",
    ),
    (
        _set(("criteria", 0, "params", "field"), "pain_type"),
        "params.field: 'pain_type' holds one of axial, radicular, mixed, which kind 'clinical_min' cannot test",
    ),
    (_set(("criteria", 0, "params", "min"), "six"), "params.min: 'six' is not a number"),
    (
        _set(("criteria", 0, "params", "min"), 2000),
        "params.min: 2000 is outside the possible values of 'pain_duration_months'",
    ),
    (_set(("criteria", 0, "params", "strict"), "no"), "params.strict: 'no' must be true or false"),
    (
        _set(("criteria", 2, "params", "values"), ["axial", "lumbar"]),
        "params.values: 'lumbar' is not a value of 'pain_type'; accepted: axial, radicular, mixed",
    ),
    (_set(("criteria", 2, "params", "values"), []), "params.values: [] must be a non-empty list"),
    (_set(("criteria", 3, "params", "levels"), ["L4-L6"]), "params.levels: 'L4-L6' is not a disc level"),
    (_set(("criteria", 3, "params", "levels"), ["L5-L4"]), "params.levels: 'L5-L4' is not a disc level"),
    (_set(("criteria", 3, "params", "types"), [1, 4]), "params.types: 4 is not a Modic type; accepted: 1, 2, 3"),
    (_set(("criteria", 3, "params"), "L3-S1"), "params: must be a mapping of parameter names to values"),
    (
        _set(("criteria", 4, "params", "field"), "pain_type"),
        "params.field: 'pain_type' holds one of axial, radicular, mixed, which kind 'clinical_includes_any' cannot",
    ),
]


@pytest.mark.parametrize(("change", "expected"), MALFORMED)
def test_malformed_policies(tmp_path: Path, change: Any, expected: str) -> None:
    message = policy_error(tmp_path, edit(change))
    assert expected in message


def test_body_limit_needs_a_required_imaging_criterion(tmp_path: Path) -> None:
    def change(data: dict[str, Any]) -> None:
        data["criteria"][3]["role"] = "exclusion"
        data["criteria"].append(
            {
                "id": "few_bodies",
                "description": "few",
                "role": "required",
                "kind": "imaging_max_treated_bodies",
                "params": {"max": 3},
            }
        )

    assert "criterion 'few_bodies' counts the vertebral bodies to treat, but no required imaging_modic" in policy_error(
        tmp_path, edit(change)
    )


def test_any_of_validation(tmp_path: Path) -> None:
    one = {
        "id": "adult",
        "description": "adult",
        "role": "required",
        "kind": "any_of",
        "params": {"criteria": [{"kind": "clinical_true", "params": {"field": "skeletal_maturity"}}]},
    }
    assert "params.criteria: " in policy_error(tmp_path, edit(lambda d: d["criteria"].append(one)))
    nested = copy.deepcopy(one)
    nested["params"]["criteria"].append({"kind": "clinical_min", "params": {"field": "age_years", "minimum": 18}})
    assert "params.criteria[1], params: unknown parameter 'minimum'" in policy_error(
        tmp_path, edit(lambda d: d["criteria"].append(nested))
    )
    nested["params"]["criteria"][1] = {"kind": "clinical_mystery", "params": {}}
    assert "params.criteria[1], kind: unknown kind 'clinical_mystery'" in policy_error(
        tmp_path, edit(lambda d: d["criteria"].append(nested))
    )


def test_policy_that_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("criteria: [\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_policy(path)


def test_from_mapping_accepts_a_minimal_policy() -> None:
    policy = Policy.from_mapping(
        {
            "name": "minimal",
            "version": "0.1",
            "description": "Only imaging.",
            "sources": [{"id": "modic1988", "citation": "Modic MT, et al. Radiology. 1988;166(1):193-199."}],
            "level_uncertainty": {"warning_codes": [], "downgrade_eligible": False},
            "criteria": [
                {
                    "id": "modic",
                    "description": "Any Modic change at L5-S1",
                    "role": "required",
                    "kind": "imaging_modic",
                    "params": {"levels": ["L5-S1"], "types": [1, 2, 3]},
                },
            ],
        }
    )
    assert policy.clinical_fields() == frozenset()
    assert policy.target_criteria()[0].levels == ("L5-S1",)
