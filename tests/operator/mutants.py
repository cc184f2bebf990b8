"""Branches the fast operator tests must guard: each mutant patches one out.

``MLSERVING_OPERATOR_MUTANT=<name>`` applies one for a whole pytest session (tests/operator/conftest.py);
tests/operator/test_mutations.py runs the tests named here with it and asserts they fail.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlserving.operator.apply import ChildApplier
from mlserving.operator.leader import LeaderElector

ENV = "MLSERVING_OPERATOR_MUTANT"
RECONCILER = "tests/operator/test_reconciler.py"
LEADER = "tests/operator/test_leader.py"


@dataclass(frozen=True)
class Mutant:
    owner: type
    attribute: str
    replacement: object
    test_file: str
    tests: tuple[str, ...]  # the tests of test_file that must fail with the mutant applied

    @property
    def catchers(self) -> list[str]:
        return [f"{self.test_file}::{name}" for name in self.tests]


MUTANTS = {
    # The applier no longer checks who controls a child's name before writing.
    "ownership-check": Mutant(ChildApplier, "check_ownership", lambda self, md, desired, existing: None,
                              RECONCILER, ("test_ownership_conflict_writes_nothing_says_why_and_recovers_once_the_name_is_free",)),
    # A candidate takes the lease without waiting for it to expire.
    "lease-expiry": Mutant(LeaderElector, "_expired", lambda self, mono, duration: True,
                           LEADER, ("test_one_leader_and_a_standby_that_waits_while_the_lease_is_renewed",
                                    "test_a_crashed_leader_is_replaced_only_after_a_whole_lease_duration")),
    # A leader that cannot renew never steps down.
    "renew-deadline": Mutant(LeaderElector, "_renew_deadline_passed", lambda self: False,
                             LEADER, ("test_a_partitioned_leader_steps_down_before_anyone_takes_over",)),
    # Children no longer desired stay.
    "pruning": Mutant(ChildApplier, "prune", lambda self, *args: None,
                      RECONCILER, ("test_children_no_longer_wanted_are_pruned_and_nothing_else_is",)),
    # replicas is dropped from the apply without handing it over first.
    "replicas-handover": Mutant(ChildApplier, "hand_over_replicas", lambda self, desired, existing: None,
                                RECONCILER, ("test_replicas_to_hpa_keeps_the_live_count_and_back_to_fixed_replicas",)),
}


def apply(name: str) -> None:
    if name not in MUTANTS:
        raise ValueError(f"{ENV}={name!r}: not one of {sorted(MUTANTS)}")
    mutant = MUTANTS[name]
    assert hasattr(mutant.owner, mutant.attribute), f"{mutant.owner.__name__}.{mutant.attribute} is gone"
    setattr(mutant.owner, mutant.attribute, mutant.replacement)
