"""Shared fixtures: `device` runs a test on the CPU and, where one exists, on a CUDA GPU.

CI has no GPU, so its CUDA variants are skipped there; on a GPU machine
`pytest -k cuda` runs just them.
"""

import pytest
import torch

NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=NEEDS_CUDA)])
def device(request) -> str:
    return request.param
