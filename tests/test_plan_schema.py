"""The planner only plans: it builds plans from a PlanSchema value, with no store on disk."""

from __future__ import annotations

import pyarrow as pa
import pytest

from amberlite import feature
from amberlite.define.registry import Registry
from amberlite.errors import AqlTypeError, ResolveError
from amberlite.library import builtin_features
from amberlite.plan import logical as L
from amberlite.plan.build import build
from amberlite.plan.rules import optimize
from amberlite.plan.schema import PlanSchema
from amberlite.syntax import parse_one

FILM1, FILM2 = "a" * 32, "b" * 32


@feature(entity="shot", version=2, output=pa.float64())
def brightness(shot):
    return 0.0


@feature(entity="shot", version=1, output=pa.list_(pa.float32(), 8))
def emb(shot):
    return [0.0] * 8


def schema() -> PlanSchema:
    registry = Registry()
    for spec in [*builtin_features(), brightness, emb]:
        registry.add(spec)
    return PlanSchema(registry, {"film1": FILM1, "film2": FILM2})


def plan_of(text: str) -> L.Plan:
    return optimize(build(schema(), parse_one(text)))


def test_a_select_plans_against_a_schema_value(tmp_path):
    plan = plan_of("SELECT id, brightness FROM shots OF 'film1' WHERE start_s < 60 LIMIT 3")
    assert isinstance(plan, L.SelectPlan)
    assert plan.sources[0].asset_ids == (FILM1,)
    assert [(u.name, u.version) for u in plan.features] == [("brightness", 2)]
    text = L.show_plan(plan)
    assert "Filter[pushed] (start_s < 60)" in text and "FeatureJoin brightness@2" in text
    assert not any(tmp_path.iterdir())  # nothing was written anywhere


def test_assets_resolve_by_alias_or_id_in_one_place():
    assert plan_of(f"SELECT id FROM shots OF ('{FILM2}', 'film1')").sources[0].asset_ids == (
        FILM2,
        FILM1,
    )
    with pytest.raises(ResolveError, match="unknown asset 'flim1'") as e:
        plan_of("SELECT id FROM shots OF 'flim1'")
    assert "film1" in str(e.value)  # the closest alias is suggested


def test_nearest_and_match_plan_without_reading_values():
    plan = plan_of("SELECT id, score FROM shots NEAREST 5 TO shot 'film1/3' BY emb")
    assert plan.nearest is not None and plan.nearest.k == 5 and plan.nearest.target_id == "film1/3"
    match = plan_of("MATCH shots BY framing TOP 4 ACROSS ASSETS")
    assert isinstance(match, L.MatchPlan) and match.feature.name == "match_framing"
    assert plan_of("MATCH shots BY emb TOP 4").feature.name == "emb"


def test_type_and_name_errors_come_from_the_schema():
    with pytest.raises(AqlTypeError, match="vector"):
        plan_of("SELECT id FROM shots NEAREST 5 TO shot 'film1/3' BY brightness")
    with pytest.raises(ResolveError, match="unknown feature 'brightnes'"):
        plan_of("SELECT brightnes FROM shots")
    with pytest.raises(ResolveError, match="unknown entity set 'scenes'"):
        plan_of("SELECT id FROM scenes")
    assert plan_of("SELECT brightness@2 FROM shots").features[0].version == 2
