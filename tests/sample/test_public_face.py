"""The fork's own code imports only the public face (`from sagemaker_byo import ...`), so the
plumbing can move inside its package without breaking it. A fork keeps this test as it is."""

from __future__ import annotations

import re

import pytest

from support import ALGO

SUBMODULE_IMPORT = re.compile(r"^\s*(?:from\s+sagemaker_byo\.\w|import\s+sagemaker_byo\b)", re.M)


@pytest.mark.parametrize("name", ["algorithm.py", "predictor.py"])
def test_the_forks_code_imports_only_the_public_face(name):
    assert not SUBMODULE_IMPORT.findall((ALGO / name).read_text())
