"""Hypothesis profiles: `ci` (selected when the CI variable is set) is derandomized."""

import os

import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=300,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# Speed is measured in bench/, never asserted: a busy machine must not fail a test.
quiet = [HealthCheck.too_slow]
settings.register_profile("dev", max_examples=100, deadline=None, suppress_health_check=quiet)
settings.register_profile("thorough", max_examples=5000, deadline=None, suppress_health_check=quiet)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))


@pytest.fixture
def restore_rules():
    """The rule table as it was after the test: operations a test adds (autodiff.op) go."""
    from autodiff import Value, engine
    from autodiff.rules import RULES

    before = dict(RULES)
    used = set(engine._used)  # which added operations have computed (op's replace= check)
    methods = dict(vars(Value))  # and the Value methods they bring (Rule.method)
    yield
    RULES.clear()
    RULES.update(before)
    engine._used.clear()
    engine._used.update(used)
    for name in set(vars(Value)) - set(methods):
        delattr(Value, name)
    for name, fn in methods.items():
        if vars(Value).get(name) is not fn:
            setattr(Value, name, fn)
