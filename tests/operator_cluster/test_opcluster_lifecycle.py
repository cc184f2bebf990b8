"""Issue 4 acceptance 3-8 against the shared operator process, one namespace per test."""

import pytest
from opcluster_scenarios import (
    scenario_children_status_columns,
    scenario_deleting_collects_everything,
    scenario_hand_changes_are_reverted,
    scenario_missing_secret_is_named_until_it_exists,
    scenario_removing_a_variant_prunes_it,
    scenario_version_change_rolls_one_deployment,
    scenario_weights_only_touch_routing,
)

pytestmark = pytest.mark.cluster


def test_ab_example_creates_labelled_owned_children_and_becomes_ready(crd, api, op_ns):
    scenario_children_status_columns(crd, api, op_ns)


def test_weight_change_rewrites_routing_and_hpa_bounds_without_rollout(crd, api, op_ns):
    scenario_weights_only_touch_routing(crd, api, op_ns)


def test_candidate_version_change_rolls_only_the_candidate(crd, api, op_ns):
    scenario_version_change_rolls_one_deployment(crd, api, op_ns)


def test_deleted_deployment_and_edited_service_are_put_back(crd, api, op_ns):
    scenario_hand_changes_are_reverted(crd, api, op_ns)


def test_removed_variant_is_pruned_and_stable_service_selects_the_survivor(crd, api, op_ns):
    scenario_removing_a_variant_prunes_it(crd, api, op_ns)


def test_deleting_the_model_deployment_garbage_collects_all_children(crd, api, op_ns):
    scenario_deleting_collects_everything(crd, api, op_ns)


def test_missing_auth_secret_is_named_in_status_until_it_is_created(crd, api, op_ns):
    scenario_missing_secret_is_named_until_it_exists(crd, api, op_ns)
