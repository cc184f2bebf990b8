"""Leader election on the in-memory API with a clock the test moves: takeover only after expiry,
never two leaders acting at once, a partitioned leader steps down before anyone takes over.
(Two real operator processes on a real API server: tests/operator_cluster/test_opcluster_ha.py.)"""

import pytest
from fake_kubeapi import FakeClock, FakeKubeApi
from mlserving.operator import leader
from mlserving.operator.kinds import LEASE
from mlserving.operator.kubeapi import ApiError
from mlserving.operator.leader import LeaderElector, LeaseConfig, LeaseNamespaceMissing

DURATION, DEADLINE, RETRY = 15.0, 10.0, 2.0


class Partitionable:
    """One replica's view of the API: ``down`` makes every call fail as if unreachable."""

    def __init__(self, api: FakeKubeApi):
        self.api, self.down = api, False

    def __getattr__(self, name):
        method = getattr(self.api, name)

        def call(*args, **kwargs):
            if self.down:
                raise ApiError(0, "ConnectError", "network partition")
            return method(*args, **kwargs)
        return call


def replicas(n=2):
    clock = FakeClock()
    api = FakeKubeApi(clock)
    out = []
    for i in range(n):
        lost = []
        view = Partitionable(api)
        cfg = LeaseConfig("ops", "mlserving-operator", f"op-{i}", DURATION, DEADLINE, RETRY)
        elector = LeaderElector(view, cfg, on_lost=lost.append, clock=clock)
        out.append((elector, view, lost))
    return api, clock, out


def step(electors) -> None:
    """One retry period of every replica: the leader renews, the others campaign."""
    for elector in electors:
        if elector.is_leader:
            elector.renew_once()
        else:
            try:
                elector.try_acquire_or_renew()
            except ApiError:
                pass


def holder(api) -> str | None:
    return api.get(LEASE, "ops", "mlserving-operator")["spec"]["holderIdentity"]


def test_one_leader_and_a_standby_that_waits_while_the_lease_is_renewed():
    api, clock, ((a, _, a_lost), (b, _, _)) = replicas()
    assert a.try_acquire_or_renew() is True
    for _ in range(30):  # a minute of renewals: the standby never takes over
        clock.advance(RETRY)
        step([a, b])
        assert a.is_leader and not b.is_leader
    assert holder(api) == "op-0" and a_lost == []
    assert api.get(LEASE, "ops", "mlserving-operator")["spec"]["leaseTransitions"] == 0


def test_a_crashed_leader_is_replaced_only_after_a_whole_lease_duration():
    api, clock, ((a, _, _), (b, _, _)) = replicas()
    a.try_acquire_or_renew()
    assert b.try_acquire_or_renew() is False  # b sees the record for the first time
    clock.advance(DURATION - 0.5)  # a is gone (no more renewals)
    assert b.try_acquire_or_renew() is False
    clock.advance(1.0)
    assert b.try_acquire_or_renew() is True
    lease = api.get(LEASE, "ops", "mlserving-operator")["spec"]
    assert (lease["holderIdentity"], lease["leaseTransitions"]) == ("op-1", 1)


def test_a_partitioned_leader_steps_down_before_anyone_takes_over():
    _, clock, ((a, a_view, a_lost), (b, _, _)) = replicas()
    a.try_acquire_or_renew()
    a_view.down = True
    lost_at = taken_at = None
    t = 0.0
    while taken_at is None and t < 60:
        clock.advance(1.0)
        t += 1.0
        step([a, b])
        assert not (a.is_leader and b.is_leader), f"two leaders at t={t}"
        if a_lost and lost_at is None:
            lost_at = t
        if b.is_leader:
            taken_at = t
    assert lost_at is not None and taken_at is not None
    assert lost_at <= DEADLINE + 1 < DURATION <= taken_at
    assert "could not renew" in a_lost[0]
    assert not a.healthy() or not a.is_leader


def test_two_candidates_racing_for_an_expired_lease_make_one_leader():
    api, clock, ((a, _, _), (b, _, _), (c, _, _)) = replicas(3)
    a.try_acquire_or_renew()
    b.try_acquire_or_renew()
    c.try_acquire_or_renew()
    clock.advance(DURATION + 1)  # a died; b and c both see the lease expired
    won = []
    # c's write lands between b's read and b's write: b's write carries a stale resourceVersion.
    api.before("replace", "Lease", lambda: won.append(("op-2", c.try_acquire_or_renew())))
    won.append(("op-1", b.try_acquire_or_renew()))
    assert won == [("op-2", True), ("op-1", False)]
    assert holder(api) == "op-2" and not b.is_leader


def test_a_leader_that_finds_someone_else_in_the_lease_steps_down():
    api, clock, ((a, _, a_lost), _) = replicas()
    a.try_acquire_or_renew()
    lease = api.get(LEASE, "ops", "mlserving-operator")
    lease["spec"]["holderIdentity"] = "intruder"
    api.replace(LEASE, "ops", "mlserving-operator", lease)
    clock.advance(RETRY)
    assert a.renew_once() is False and not a.is_leader
    assert "now held by 'intruder'" in a_lost[0]


def test_a_released_lease_is_taken_at_once():
    api, _, ((a, _, _), (b, _, _)) = replicas()
    a.try_acquire_or_renew()
    assert b.try_acquire_or_renew() is False
    a.release()
    assert holder(api) is None and not a.is_leader
    assert b.try_acquire_or_renew() is True


def test_a_leader_whose_renewals_stall_is_unhealthy():
    _, clock, ((a, _, _), (b, _, _)) = replicas()
    assert b.healthy()  # a standby is healthy
    a.try_acquire_or_renew()
    assert a.healthy()
    clock.advance(DURATION + 1)
    assert not a.healthy()


def test_a_lease_namespace_that_does_not_exist_stops_the_campaign_with_the_fix():
    api, _, ((a, _, _), _) = replicas()
    api.fail("create", kind="Lease", status=404, message='namespaces "ops" not found')
    with pytest.raises(LeaseNamespaceMissing, match="kubectl create namespace ops.*MLSERVING_LEASE_NAMESPACE"):
        a.try_acquire_or_renew()


def test_outside_a_pod_the_lease_goes_to_the_first_watched_namespace(monkeypatch, tmp_path):
    monkeypatch.setattr(leader, "SERVICE_ACCOUNT_DIR", str(tmp_path / "no-service-account"))
    assert LeaseConfig.from_env({}, watched=["team-a", "team-b"]).namespace == "team-a"
    assert LeaseConfig.from_env({}).namespace == "mlserving-system"
    assert LeaseConfig.from_env({"POD_NAMESPACE": "ops"}, watched=["team-a"]).namespace == "ops"
    assert LeaseConfig.from_env({"MLSERVING_LEASE_NAMESPACE": "x"}, watched=["team-a"]).namespace == "x"
