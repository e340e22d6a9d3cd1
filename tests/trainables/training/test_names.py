from __future__ import annotations

import subprocess
import sys
from typing import get_args

from trainables.models import MODEL_SIZES, ModelSize
from trainables.training.names import MODEL_SIZE_NAMES, MODES, OOM_STAGES


def test_names_match_the_heavy_modules() -> None:
    assert MODEL_SIZE_NAMES == MODEL_SIZES == get_args(ModelSize)
    assert MODES == ("normal", "autoencoder", "curriculum", "kd", "fusion")
    assert OOM_STAGES == ("tuner", "train", "validation", "test")


def test_names_import_without_torch() -> None:
    code = (
        "import sys, trainables.training.names, trainables.training; "
        "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
