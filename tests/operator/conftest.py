"""Applies a mutant (tests/operator/mutants.py) to the whole session when asked to."""

import os

import mutants


def pytest_configure(config):
    name = os.environ.get(mutants.ENV)
    if name:
        mutants.apply(name)
