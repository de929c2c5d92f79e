"""Candidacy verdicts, target bodies and caveats on hand-worked cases for every shipped policy."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modic import RESEARCH_NOTICE
from modic.candidacy import (
    ELIGIBLE,
    INSUFFICIENT,
    MET,
    NOT_ELIGIBLE,
    NOT_MET,
    UNKNOWN,
    CandidacyResult,
    Policy,
    evaluate_candidacy,
    load_policy,
)
from modic.errors import SchemaError
from helpers.candidacy import DEFAULT_OK, MISSING, PAYER_OK, TRIAL_OK, facts, lumbar, report, trial_levels


@pytest.fixture(scope="module")
def default() -> Policy:
    return load_policy("default")


@pytest.fixture(scope="module")
def payer() -> Policy:
    return load_policy("payer_strict")


@pytest.fixture(scope="module")
def trial() -> Policy:
    return load_policy("trial_intracept")


def status(result: CandidacyResult, criterion: str) -> str:
    return next(c.status for c in result.criteria if c.id == criterion)


def criterion(result: CandidacyResult, criterion_id: str) -> Any:
    return next(c for c in result.criteria if c.id == criterion_id)


# --- default policy --------------------------------------------------------------------------


def test_default_eligible_single_level(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**DEFAULT_OK), default)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5")
    assert result.targets.qualifying_levels == ("L4-L5",)
    assert result.targets.complete
    assert [c.status for c in result.criteria] == [MET, MET, MET, MET, NOT_MET]
    imaging = criterion(result, "modic_l3_s1")
    assert imaging.evidence["qualifying_levels"] == ["L4-L5"]
    by_endplate = {e["endplate"]: e for e in imaging.evidence["endplates"]}
    assert by_endplate["L4 inferior"]["modic_type"] == 1 and by_endplate["L4 inferior"]["qualifies"] is True
    assert by_endplate["L5 superior"]["qualifies"] is False
    assert "L4-L5 (L4 inferior 1)" in imaging.detail
    pain = criterion(result, "chronic_pain")
    assert pain.evidence == {"field": "pain_duration_months", "value": 12, "min": 6, "strict": False}


def test_two_adjacent_levels_target_three_bodies(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 1), L5_S1=(2, 0))), facts(**DEFAULT_OK), default)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5", "S1")
    assert result.targets.qualifying_levels == ("L4-L5", "L5-S1")


def test_non_adjacent_levels_target_both_pairs(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L3_L4=(0, 2), L5_S1=(1, 0))), facts(**DEFAULT_OK), default)

    assert result.targets.bodies == ("L3", "L4", "L5", "S1")
    assert result.targets.qualifying_levels == ("L3-L4", "L5-S1")


def test_mixed_grade_including_type_2_qualifies(default: Policy) -> None:
    # S1 superior is reported as type 3 with a mixed 3/2 reading: the 2 qualifies.
    result = evaluate_candidacy(report(lumbar(L5_S1=(0, "3/2"))), facts(**DEFAULT_OK), default)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L5", "S1")
    endplate = next(e for e in criterion(result, "modic_l3_s1").evidence["endplates"] if e["endplate"] == "S1 superior")
    assert endplate["modic_type"] == 3 and endplate["mixed"] == "3/2" and endplate["qualifies"] is True


def test_mixed_2_3_qualifies(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=("2/3", 0))), facts(**DEFAULT_OK), default)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5")


def test_type_3_alone_does_not_qualify(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(3, 3), L5_S1=(0, 3))), facts(**DEFAULT_OK), default)

    assert result.verdict == NOT_ELIGIBLE
    assert status(result, "modic_l3_s1") == NOT_MET
    assert result.targets.bodies == ()
    assert any("modic_l3_s1" in reason for reason in result.reasons)


def test_modic_outside_the_policy_levels_is_ignored(default: Policy) -> None:
    levels = {"L2-L3": (1, 1), **lumbar()}
    result = evaluate_candidacy(report(levels), facts(**DEFAULT_OK), default)

    assert result.verdict == NOT_ELIGIBLE
    assert result.targets.bodies == ()


def test_missing_clinical_fact_gives_insufficient_information(default: Policy) -> None:
    given_facts = {key: value for key, value in DEFAULT_OK.items() if key != "conservative_care_months"}
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**given_facts), default)

    assert result.verdict == INSUFFICIENT
    assert status(result, "failed_conservative_care") == UNKNOWN
    assert criterion(result, "failed_conservative_care").evidence["value"] is None
    assert result.reasons == (
        "'failed_conservative_care' is unknown: conservative_care_months not given "
        "(condition: conservative_care_months >= 6)",
    )
    assert result.targets.bodies == ("L4", "L5")


def test_unknown_contraindications_give_insufficient_information(default: Policy) -> None:
    given_facts = {key: value for key, value in DEFAULT_OK.items() if key != "contraindications"}
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**given_facts), default)

    assert result.verdict == INSUFFICIENT
    assert status(result, "contraindication") == UNKNOWN


def test_empty_clinical_file_is_never_eligible(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(), default)

    assert result.verdict == INSUFFICIENT
    assert {c.id for c in result.criteria if c.status == UNKNOWN} == {
        "chronic_pain",
        "failed_conservative_care",
        "axial_pain",
        "contraindication",
    }


@pytest.mark.parametrize(
    ("change", "decisive"),
    [
        ({"pain_duration_months": 5.5}, "chronic_pain"),
        ({"conservative_care_months": 3}, "failed_conservative_care"),
        ({"pain_type": "radicular"}, "axial_pain"),
        ({"pain_type": "mixed"}, "axial_pain"),
        ({"contraindications": ["active_infection"]}, "contraindication"),
        ({"contraindications": ["coagulopathy"]}, "contraindication"),
        ({"contraindications": ["pregnancy"]}, "contraindication"),
    ],
)
def test_default_not_eligible_paths(default: Policy, change: dict[str, Any], decisive: str) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**{**DEFAULT_OK, **change}), default)

    assert result.verdict == NOT_ELIGIBLE
    assert [c.id for c in result.criteria if c.decisive] == [decisive]
    assert len(result.reasons) == 1 and f"'{decisive}'" in result.reasons[0]


def test_boundary_values_are_met(default: Policy) -> None:
    result = evaluate_candidacy(
        report(lumbar(L4_L5=(1, 0))),
        facts(**{**DEFAULT_OK, "pain_duration_months": 6, "conservative_care_months": 6}),
        default,
    )
    assert result.verdict == ELIGIBLE


def test_not_eligible_wins_over_unknown(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(pain_type="radicular"), default)

    assert result.verdict == NOT_ELIGIBLE
    assert result.reasons == (
        "required criterion 'axial_pain' is not met: pain_type = radicular (condition: pain_type is axial)",
    )


def test_a_contraindication_outside_the_policy_list_does_not_exclude(default: Policy) -> None:
    result = evaluate_candidacy(
        report(lumbar(L4_L5=(1, 0))),
        facts(**{**DEFAULT_OK, "contraindications": ["active_implantable_device"]}),
        default,
    )
    assert result.verdict == ELIGIBLE


# --- imaging evidence that is incomplete ---------------------------------------------------------


def test_missing_level_without_other_change_is_unknown(default: Policy) -> None:
    levels = lumbar()
    del levels["L5-S1"]
    result = evaluate_candidacy(report(levels), facts(**DEFAULT_OK), default)

    assert result.verdict == INSUFFICIENT
    imaging = criterion(result, "modic_l3_s1")
    assert imaging.status == UNKNOWN
    assert imaging.evidence["not_graded"] == ["L5-S1"]
    assert "not graded: L5-S1" in imaging.detail
    assert result.targets.ungraded_levels == ("L5-S1",)


def test_missing_level_does_not_hide_a_qualifying_one(default: Policy) -> None:
    levels = lumbar(L4_L5=(0, 1))
    del levels["L3-L4"]
    result = evaluate_candidacy(report(levels), facts(**DEFAULT_OK), default)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5")
    assert not result.targets.complete
    assert result.to_dict()["targets_complete"] is False


def test_one_endplate_missing_or_ungraded_is_unknown(default: Policy) -> None:
    for grades in ((0, MISSING), (None, 0)):
        result = evaluate_candidacy(report(lumbar(L4_L5=grades)), facts(**DEFAULT_OK), default)
        imaging = criterion(result, "modic_l3_s1")
        assert imaging.status == UNKNOWN, grades
        expected = "L5 superior" if grades[1] == MISSING else "L4 inferior"
        assert imaging.evidence["not_graded"] == [expected]


def test_one_endplate_missing_but_the_other_qualifies(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(MISSING, 2))), facts(**DEFAULT_OK), default)
    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5")


def test_level_listed_without_endplates_uses_the_level_grade(default: Policy) -> None:
    base = report(lumbar())
    base["levels"][1] = {"level": "L4-L5", "modic_type": 1, "mixed": None, "confidence": 0.7, "endplates": []}
    assert evaluate_candidacy(base, facts(**DEFAULT_OK), default).targets.bodies == ("L4", "L5")

    base["levels"][1] = {"level": "L4-L5", "modic_type": None, "mixed": None, "confidence": None, "endplates": []}
    assert status(evaluate_candidacy(base, facts(**DEFAULT_OK), default), "modic_l3_s1") == UNKNOWN


# --- uncertain level naming ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "s1_not_found",
        "s1_ambiguous",
        "possible_missed_vertebra",
        "transitional_vertebra_suspected",
        "reference_marrow_affected",
    ],
)
def test_uncertain_levels_downgrade_eligible(default: Policy, code: str) -> None:
    result = evaluate_candidacy(
        report(lumbar(L4_L5=(1, 0)), warnings=(code, "low_confidence")), facts(**DEFAULT_OK), default
    )

    assert result.verdict == INSUFFICIENT
    assert result.downgraded
    assert result.caveats == ((code, f"{code} message"),)
    assert status(result, "modic_l3_s1") == MET
    assert result.targets.bodies == ("L4", "L5")
    assert len(result.reasons) == 1 and code in result.reasons[0] and "withholds 'eligible'" in result.reasons[0]


def test_other_warnings_are_no_caveat(default: Policy) -> None:
    warnings = ("low_confidence", "endplate_missing", "small_region", "disc_not_found")
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0)), warnings=warnings), facts(**DEFAULT_OK), default)

    assert result.verdict == ELIGIBLE
    assert result.caveats == ()
    assert not result.downgraded


def test_caveat_without_downgrade_when_the_policy_says_so(default: Policy) -> None:
    from dataclasses import replace

    lenient = replace(default, level_uncertainty=replace(default.level_uncertainty, downgrade_eligible=False))
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0)), warnings=("s1_not_found",)), facts(**DEFAULT_OK), lenient)

    assert result.verdict == ELIGIBLE
    assert not result.downgraded
    assert result.caveats == (("s1_not_found", "s1_not_found message"),)
    assert "does not withhold 'eligible'" in result.to_text()


def test_caveat_on_a_not_eligible_result(default: Policy) -> None:
    result = evaluate_candidacy(
        report(lumbar(L4_L5=(1, 0)), warnings=("s1_not_found",)),
        facts(**{**DEFAULT_OK, "pain_type": "radicular"}),
        default,
    )
    assert result.verdict == NOT_ELIGIBLE
    assert not result.downgraded
    assert [code for code, _ in result.caveats] == ["s1_not_found"]


# --- payer_strict ----------------------------------------------------------------------------------


def test_payer_eligible_with_three_bodies(payer: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0), L5_S1=(0, 2))), facts(**PAYER_OK), payer)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5", "S1")
    assert criterion(result, "at_most_three_bodies").evidence["count"] == 3


def test_payer_four_bodies_are_too_many(payer: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L3_L4=(1, 0), L5_S1=(0, 2))), facts(**PAYER_OK), payer)

    assert result.verdict == NOT_ELIGIBLE
    assert [c.id for c in result.criteria if c.decisive] == ["at_most_three_bodies"]
    assert result.targets.bodies == ("L3", "L4", "L5", "S1")


def test_payer_body_count_unknown_when_a_level_is_not_graded(payer: Policy) -> None:
    levels = lumbar(L4_L5=(1, 0), L5_S1=(0, 2))
    del levels["L3-L4"]
    result = evaluate_candidacy(report(levels), facts(**PAYER_OK), payer)

    assert result.verdict == INSUFFICIENT
    assert status(result, "at_most_three_bodies") == UNKNOWN
    assert criterion(result, "at_most_three_bodies").evidence["possible_bodies"] == ["L3", "L4", "L5", "S1"]


def test_payer_body_count_known_when_the_ungraded_level_cannot_exceed_it(payer: Policy) -> None:
    # L3-L4 is not graded; even if it qualified, L4-L5 plus L3-L4 make only L3, L4, L5.
    levels = lumbar(L4_L5=(0, 2))
    del levels["L3-L4"]
    result = evaluate_candidacy(report(levels), facts(**PAYER_OK), payer)

    assert status(result, "at_most_three_bodies") == MET
    assert result.targets.bodies == ("L4", "L5")
    assert result.targets.possible_bodies == ("L3", "L4", "L5")
    assert result.verdict == ELIGIBLE


@pytest.mark.parametrize(
    ("change", "decisive"),
    [
        ({"pain_duration_months": 8}, "chronic_pain_12_months"),
        ({"conservative_care_months": 5}, "conservative_care_6_months"),
        (
            {"conservative_care": ["physical_therapy", "nsaids", "activity_modification", "cbt"]},
            "structured_care_components",
        ),
        ({"conservative_care": ["physical_therapy", "exercise", "activity_modification", "cbt"]}, "medication_trial"),
        (
            {"conservative_care": ["physical_therapy", "exercise", "activity_modification", "nsaids"]},
            "cognitive_behavioural_component",
        ),
        ({"pain_type": "mixed"}, "axial_pain"),
        ({"contraindications": ["pregnancy"]}, "contraindication"),
        ({"age_years": 16, "skeletal_maturity": False}, "skeletal_maturity"),
    ],
)
def test_payer_not_eligible_paths(payer: Policy, change: dict[str, Any], decisive: str) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**{**PAYER_OK, **change}), payer)

    assert result.verdict == NOT_ELIGIBLE
    assert [c.id for c in result.criteria if c.decisive] == [decisive]


def test_payer_is_stricter_than_default(default: Policy, payer: Policy) -> None:
    patient = facts(**{**PAYER_OK, "pain_duration_months": 8})
    imaging = report(lumbar(L4_L5=(1, 0)))
    assert evaluate_candidacy(imaging, patient, default).verdict == ELIGIBLE
    assert evaluate_candidacy(imaging, patient, payer).verdict == NOT_ELIGIBLE


def test_payer_accepts_multidisciplinary_programme_or_steroids(payer: Policy) -> None:
    care = ["physical_therapy", "exercise", "activity_modification", "oral_steroids", "multidisciplinary"]
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**{**PAYER_OK, "conservative_care": care}), payer)
    assert result.verdict == ELIGIBLE


@pytest.mark.parametrize(
    ("maturity", "expected_status"),
    [
        ({"skeletal_maturity": True, "age_years": 16}, MET),
        ({"age_years": 18}, MET),
        ({"age_years": 16}, UNKNOWN),
        ({"skeletal_maturity": False, "age_years": 16}, NOT_MET),
        ({}, UNKNOWN),
    ],
)
def test_payer_skeletal_maturity_any_of(payer: Policy, maturity: dict[str, Any], expected_status: str) -> None:
    given_facts = {key: value for key, value in PAYER_OK.items() if key != "age_years"}
    given_facts.update(maturity)
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0))), facts(**given_facts), payer)

    maturity_result = criterion(result, "skeletal_maturity")
    assert maturity_result.status == expected_status
    assert [a["kind"] for a in maturity_result.evidence["alternatives"]] == ["clinical_true", "clinical_min"]
    assert result.verdict == {MET: ELIGIBLE, UNKNOWN: INSUFFICIENT, NOT_MET: NOT_ELIGIBLE}[expected_status]


# --- trial_intracept ------------------------------------------------------------------------------


def test_trial_eligible(trial: Policy) -> None:
    result = evaluate_candidacy(report(trial_levels(L4_L5=(2, 2))), facts(**TRIAL_OK), trial)

    assert result.verdict == ELIGIBLE
    assert result.targets.bodies == ("L4", "L5")
    assert status(result, "modic_other_levels") == NOT_MET


def test_trial_needs_the_other_lumbar_levels_graded(trial: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(2, 2))), facts(**TRIAL_OK), trial)

    assert result.verdict == INSUFFICIENT
    assert [c.id for c in result.criteria if c.status == UNKNOWN] == ["modic_other_levels"]
    assert "not graded: L1-L2, L2-L3" in criterion(result, "modic_other_levels").detail
    assert result.targets.bodies == ("L4", "L5")


def test_trial_missing_scores_give_insufficient_information(trial: Policy) -> None:
    given_facts = {key: value for key, value in TRIAL_OK.items() if key not in ("odi", "bmi")}
    result = evaluate_candidacy(report(trial_levels(L4_L5=(2, 2))), facts(**given_facts), trial)

    assert result.verdict == INSUFFICIENT
    assert [c.id for c in result.criteria if c.status == UNKNOWN] == ["odi_at_least_30", "bmi_over_40"]


@pytest.mark.parametrize(
    ("change", "decisive"),
    [
        ({"odi": 29}, "odi_at_least_30"),
        ({"vas_pain": 3.9}, "vas_at_least_4"),
        ({"pain_type": "radicular"}, "radicular_pain"),
        ({"pain_type": "mixed"}, "radicular_pain"),
        ({"prior_lumbar_surgery_levels": ["L2-L3"]}, "previous_lumbar_surgery"),
        ({"symptomatic_stenosis": True}, "symptomatic_stenosis"),
        ({"disc_protrusion_mm": 5.5}, "disc_protrusion_over_5mm"),
        ({"spondylolisthesis_mm": 2.5}, "spondylolisthesis_over_2mm"),
        ({"spondylolysis": True}, "spondylolysis"),
        ({"bmi": 40.5}, "bmi_over_40"),
        ({"contraindications": ["active_implantable_device"]}, "contraindication"),
        ({"contraindications": ["coagulopathy", "pregnancy"]}, "contraindication"),
        ({"pain_duration_months": 4}, "chronic_pain"),
        ({"conservative_care_months": 2}, "failed_non_operative_care"),
    ],
)
def test_trial_each_exclusion(trial: Policy, change: dict[str, Any], decisive: str) -> None:
    result = evaluate_candidacy(report(trial_levels(L4_L5=(2, 2))), facts(**{**TRIAL_OK, **change}), trial)

    assert result.verdict == NOT_ELIGIBLE
    assert [c.id for c in result.criteria if c.decisive] == [decisive]


def test_trial_modic_at_other_levels_excludes(trial: Policy) -> None:
    result = evaluate_candidacy(report(trial_levels(L2_L3=(0, 3), L4_L5=(2, 2))), facts(**TRIAL_OK), trial)

    assert result.verdict == NOT_ELIGIBLE
    assert [c.id for c in result.criteria if c.decisive] == ["modic_other_levels"]
    assert result.targets.bodies == ("L4", "L5")


@pytest.mark.parametrize(
    "change",
    [{"disc_protrusion_mm": 5}, {"spondylolisthesis_mm": 2}, {"bmi": 40}, {"odi": 30}, {"vas_pain": 4}],
)
def test_trial_thresholds_at_the_boundary_do_not_exclude(trial: Policy, change: dict[str, Any]) -> None:
    result = evaluate_candidacy(report(trial_levels(L4_L5=(2, 2))), facts(**{**TRIAL_OK, **change}), trial)
    assert result.verdict == ELIGIBLE


# --- properties and outputs -----------------------------------------------------------------------

POLICY_CASES = {
    "default": (DEFAULT_OK, lumbar(L4_L5=(1, 0))),
    "payer_strict": (PAYER_OK, lumbar(L4_L5=(1, 0))),
    "trial_intracept": (TRIAL_OK, trial_levels(L4_L5=(1, 0))),
}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(POLICY_CASES)), data=st.data())
def test_unknown_facts_never_yield_eligible(name: str, data: st.DataObject) -> None:
    complete, levels = POLICY_CASES[name]
    policy = load_policy(name)
    kept = data.draw(st.sets(st.sampled_from(sorted(complete))))
    result = evaluate_candidacy(report(levels), facts(**{k: complete[k] for k in kept}), policy)

    missing_used = policy.clinical_fields() - kept
    # skeletal maturity is an any_of: either a true flag or an adult age suffices
    if name != "default" and {"age_years", "skeletal_maturity"} & kept:
        missing_used -= {"age_years", "skeletal_maturity"}
    if missing_used:
        assert result.verdict == INSUFFICIENT
    else:
        assert result.verdict == ELIGIBLE


def test_to_dict_is_json_and_complete(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=(1, 0), L5_S1=(0, 2))), facts(**DEFAULT_OK), default)
    data = json.loads(json.dumps(result.to_dict()))

    assert data["schema"] == "modic-candidacy" and data["schema_version"] == "1.0"
    assert data["research_notice"] == RESEARCH_NOTICE
    assert data["verdict"] == "eligible"
    assert data["target_bodies"] == ["L4", "L5", "S1"]
    assert data["qualifying_levels"] == ["L4-L5", "L5-S1"]
    assert data["study_key"] == "3f9a0c1d2e4b5a69"
    assert data["policy"]["name"] == "default" and data["policy"]["version"] == "1.0"
    assert len(data["policy"]["sha256"]) == 64
    assert {s["id"] for s in data["policy"]["sources"]} >= {"fischgrund2018", "khalil2019", "nass2022"}
    assert [c["id"] for c in data["criteria"]] == [c.id for c in default.criteria]
    assert {c["status"] for c in data["criteria"]} <= {"met", "not met", "unknown"}
    assert data["caveats"] == [] and data["downgraded"] is False


def test_text_rendering(default: Policy) -> None:
    result = evaluate_candidacy(
        report(lumbar(L4_L5=(1, 0), L5_S1=(0, 2)), warnings=("s1_not_found",)), facts(**DEFAULT_OK), default
    )
    text = result.to_text()

    assert text.startswith("Basivertebral nerve ablation candidacy: INSUFFICIENT INFORMATION")
    assert "Vertebral bodies to target: L4, L5, S1 (qualifying levels: L4-L5, L5-S1)" in text
    for c in default.criteria:
        assert f"{c.id}: " in text
    assert "s1_not_found: s1_not_found message" in text
    assert "[khalil2019] Khalil JG" in text
    assert text.endswith(RESEARCH_NOTICE)


def test_malformed_report_is_a_schema_error(default: Policy) -> None:
    with pytest.raises(SchemaError, match="'levels' must be a list"):
        evaluate_candidacy({"schema": "modic-report", "levels": None}, facts(), default)
    bad = report(lumbar())
    bad["levels"][0]["endplates"][0]["modic_type"] = 7
    with pytest.raises(SchemaError, match="modic_type 7 is not one of 0, 1, 2, 3"):
        evaluate_candidacy(bad, facts(), default)
    bad = report(lumbar())
    bad["levels"][0]["endplates"][0]["mixed"] = "2 and 3"
    with pytest.raises(SchemaError, match="mixed '2 and 3'"):
        evaluate_candidacy(bad, facts(), default)


# --- the generic kinds the shipped policies do not use ---------------------------------------------


def custom_policy(*criteria: dict[str, Any]) -> Policy:
    return Policy.from_mapping(
        {
            "name": "custom",
            "version": "0.1",
            "description": "Kinds under test.",
            "sources": [{"id": "test", "citation": "Hand-worked test case."}],
            "level_uncertainty": {"warning_codes": [], "downgrade_eligible": False},
            "criteria": [
                {"id": f"c{index}", "description": "under test", "role": "required", **entry}
                for index, entry in enumerate(criteria)
            ],
        }
    )


@pytest.mark.parametrize(
    ("entry", "values", "expected"),
    [
        ({"kind": "clinical_max", "params": {"field": "bmi", "max": 35}}, {"bmi": 35}, MET),
        ({"kind": "clinical_max", "params": {"field": "bmi", "max": 35}}, {"bmi": 35.5}, NOT_MET),
        ({"kind": "clinical_max", "params": {"field": "bmi", "max": 35, "strict": True}}, {"bmi": 35}, NOT_MET),
        ({"kind": "clinical_max", "params": {"field": "bmi", "max": 35}}, {}, UNKNOWN),
        (
            {"kind": "clinical_min", "params": {"field": "spondylolisthesis_grade", "min": 2}},
            {"spondylolisthesis_grade": 1},
            NOT_MET,
        ),
        ({"kind": "clinical_false", "params": {"field": "symptomatic_stenosis"}}, {"symptomatic_stenosis": False}, MET),
        (
            {"kind": "clinical_false", "params": {"field": "symptomatic_stenosis"}},
            {"symptomatic_stenosis": True},
            NOT_MET,
        ),
        ({"kind": "clinical_true", "params": {"field": "spondylolysis"}}, {"spondylolysis": False}, NOT_MET),
        (
            {"kind": "clinical_none_of", "params": {"field": "contraindications", "values": ["pregnancy"]}},
            {"contraindications": []},
            MET,
        ),
        (
            {"kind": "clinical_none_of", "params": {"field": "contraindications", "values": ["pregnancy"]}},
            {"contraindications": ["pregnancy", "coagulopathy"]},
            NOT_MET,
        ),
        ({"kind": "clinical_none_of", "params": {"field": "contraindications", "values": ["pregnancy"]}}, {}, UNKNOWN),
        (
            {"kind": "clinical_includes_all", "params": {"field": "conservative_care", "values": ["cbt", "nsaids"]}},
            {"conservative_care": ["nsaids"]},
            NOT_MET,
        ),
        (
            {"kind": "clinical_includes_any", "params": {"field": "prior_lumbar_surgery_levels", "values": ["L4-L5"]}},
            {"prior_lumbar_surgery_levels": ["L2-L3"]},
            NOT_MET,
        ),
        (
            {"kind": "clinical_in", "params": {"field": "pain_type", "values": ["axial", "mixed"]}},
            {"pain_type": "mixed"},
            MET,
        ),
        ({"kind": "imaging_modic", "params": {"levels": ["L5-S1"], "types": [3]}}, {}, NOT_MET),
        ({"kind": "imaging_modic", "params": {"levels": ["L4-L5"], "types": [3]}}, {}, MET),
    ],
)
def test_generic_kinds(entry: dict[str, Any], values: dict[str, Any], expected: str) -> None:
    policy = custom_policy(entry)
    result = evaluate_candidacy(report(lumbar(L4_L5=(3, "2/3"), L5_S1=(1, 0))), facts(**values), policy)

    assert result.criteria[0].status == expected
    assert result.verdict == {MET: ELIGIBLE, NOT_MET: NOT_ELIGIBLE, UNKNOWN: INSUFFICIENT}[expected]


def test_exclusion_role_with_a_required_imaging_criterion() -> None:
    policy = custom_policy(
        {"kind": "imaging_modic", "params": {"levels": ["L3-L4", "L4-L5", "L5-S1"], "types": [1]}},
        {"kind": "clinical_max", "params": {"field": "odi", "max": 20}, "role": "exclusion"},
    )
    imaging = report(lumbar(L5_S1=(1, 0)))

    assert evaluate_candidacy(imaging, facts(odi=15), policy).verdict == NOT_ELIGIBLE
    assert evaluate_candidacy(imaging, facts(odi=45), policy).verdict == ELIGIBLE
    assert evaluate_candidacy(imaging, facts(), policy).verdict == INSUFFICIENT
    assert evaluate_candidacy(imaging, facts(odi=45), policy).targets.bodies == ("L5", "S1")


@pytest.mark.parametrize(
    ("code", "grades", "would_be"),
    [
        ("missing_t2", lumbar(L4_L5=(2, 0)), MET),  # T1 alone shows type 2: still not enough
        ("missing_t2", lumbar(), NOT_MET),  # T1 alone shows nothing: not a 'not eligible'
        ("missing_t1", lumbar(L4_L5=("undetermined", "undetermined")), UNKNOWN),
    ],
)
def test_single_sequence_study_gives_insufficient_information(
    default: Policy, code: str, grades: dict, would_be: str
) -> None:
    result = evaluate_candidacy(report(grades, warnings=(code,)), facts(**DEFAULT_OK), default)

    assert result.verdict == INSUFFICIENT
    assert status(result, "modic_l3_s1") == UNKNOWN
    missing = code[-2:].upper()
    criterion = next(c for c in result.criteria if c.id == "modic_l3_s1")
    assert f"no sagittal {missing}" in criterion.detail and f"[{would_be}]" in criterion.detail
    assert criterion.evidence["missing_sequences"] == [missing]
    assert any("modic_l3_s1" in reason and f"no sagittal {missing}" in reason for reason in result.reasons)
    assert status(result, "chronic_pain") == MET


def test_single_sequence_study_is_still_not_eligible_for_a_clinical_exclusion(default: Policy) -> None:
    clinical = {**DEFAULT_OK, "contraindications": ["pregnancy"]}
    result = evaluate_candidacy(report(lumbar(L4_L5=(2, 0)), warnings=("missing_t2",)), facts(**clinical), default)

    assert result.verdict == NOT_ELIGIBLE
    assert len(result.reasons) == 1 and "contraindication" in result.reasons[0]


def test_undetermined_endplates_are_not_graded(default: Policy) -> None:
    result = evaluate_candidacy(report(lumbar(L4_L5=("undetermined", 0))), facts(**DEFAULT_OK), default)

    assert result.verdict == INSUFFICIENT
    assert status(result, "modic_l3_s1") == UNKNOWN
    assert "L4 inferior" in next(c for c in result.criteria if c.id == "modic_l3_s1").detail


def test_imaging_criteria_name_the_series_they_read(default: Policy) -> None:
    data = report(lumbar(L4_L5=(1, 0)))
    data["series"] = {
        "t1": {"series_number": 3, "description": "SAG T1 TSE", "weighting": "T1"},
        "t2": {"series_number": 4, "description": "SAG T2 TSE", "weighting": "T2"},
    }
    result = evaluate_candidacy(data, facts(**DEFAULT_OK), default)

    criterion = next(c for c in result.criteria if c.id == "modic_l3_s1")
    assert criterion.evidence["series"] == {"t1": "series 3 'SAG T1 TSE' (T1)", "t2": "series 4 'SAG T2 TSE' (T2)"}
    assert result.verdict == ELIGIBLE
