import pytest

from flags import services
from rollout_control.core.actors import Actor

SYSTEM = Actor.system("test")


@pytest.fixture
def beta_cohort(db: None) -> object:
    cohort = services.cohort_create(key="beta", name="Beta testers", actor=SYSTEM)
    services.cohort_members_add(key="beta", units=["u-1", "u-2"], actor=SYSTEM)
    return cohort


@pytest.fixture
def checkout_flag(db: None, beta_cohort: object) -> object:
    return services.flag_create(
        key="new-checkout",
        actor=SYSTEM,
        rollout_percentage=10,
        cohort_rules=[services.CohortRuleInput(cohort="beta", percentage=100)],
    )
