import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402

from fathom.synth.fathomnet import SynthConfig, generate  # noqa: E402


@pytest.fixture(scope="session")
def small_comp(tmp_path_factory):
    """A small synthetic competition, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("comp") / "synth"
    generate(root, SynthConfig(n_train=120, n_eval=60, width=64, height=48, seed=3), progress=False)
    return root


@pytest.fixture
def run_cli(capsys):
    """Run `fathom ARGS...` in-process; return (exit code, stdout, stderr)."""
    from _fake_runs import cli

    def _run(*args):
        code = cli(*args)
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run
