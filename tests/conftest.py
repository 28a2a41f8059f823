from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture
def speech_clip() -> Path:
    """A real 4.4 s emotional sentence (RAVDESS, CC BY-NC-SA 4.0; see tests/data/LICENSE.md)."""
    return DATA / "ravdess_A21_angry.flac"


@pytest.fixture
def digit_clips() -> list[Path]:
    """Two short spoken digits (FSDD, CC BY-SA 4.0)."""
    return [DATA / "fsdd_3_jackson_0.flac", DATA / "fsdd_7_theo_0.flac"]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
