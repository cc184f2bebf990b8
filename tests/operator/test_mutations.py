"""Each guarded branch of the operator is guarded: with it patched out, the tests fail.

Every mutant of tests/operator/mutants.py runs its catching tests in a fresh pytest process
(with ``MLSERVING_OPERATOR_MUTANT`` set), all at once; each must end with those tests FAILED,
not with an error or a pass.
"""

import os
import pathlib
import subprocess
import sys

import pytest
from mutants import ENV, MUTANTS

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mutant_runs():
    procs = {}
    for name, mutant in MUTANTS.items():
        env = {**os.environ, ENV: name}
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", "--no-header", *mutant.catchers],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    results = {}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        results[name] = (proc.returncode, out)
    return results


@pytest.mark.parametrize("name", sorted(MUTANTS))
def test_the_suite_fails_with_the_branch_patched_out(mutant_runs, name):
    returncode, out = mutant_runs[name]
    assert returncode == 1, f"mutant {name} survived or broke the run (exit {returncode}):\n{out[-3000:]}"
    for test_id in MUTANTS[name].catchers:
        assert f"FAILED {test_id}" in out, f"{test_id} did not catch mutant {name}:\n{out[-3000:]}"
    assert " error" not in out.splitlines()[-1], out[-3000:]
