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


def _run_job(tmp_path_factory, module: str, argv: list[str]):
    """Run a main job once, in a folder of its own: (that folder, what it printed, and
    what it wrote to stderr, its exit status)."""
    import contextlib
    import importlib
    import io

    job = importlib.import_module(module)
    folder = tmp_path_factory.mktemp(module.replace(".", "_"))
    out, err = io.StringIO(), io.StringIO()
    here = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = job.main(argv)
    finally:
        os.chdir(here)
    return folder, out.getvalue(), err.getvalue(), status


@pytest.fixture(scope="session")
def xor_job(tmp_path_factory):
    """`python -m nn.xor` as the README runs it (its defaults), once per test session:
    (the folder it ran in, stdout, stderr, exit status); it writes into ./xor-out."""
    return _run_job(tmp_path_factory, "nn.xor", ["--out", "xor-out"])


@pytest.fixture(scope="session")
def digits_job(tmp_path_factory):
    """`python -m nn.digits` with its defaults, once per test session (see xor_job); it
    writes into ./digits-out."""
    return _run_job(tmp_path_factory, "nn.digits", [])
