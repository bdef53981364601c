"""The contract itself: buf lint (STANDARD and COMMENTS) passes on every proto."""

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUF = ROOT / "node_modules" / ".bin" / "buf"


def test_buf_lint_passes_on_the_contract():
    assert BUF.exists() or shutil.which("buf"), "the buf CLI is installed by `make test` (npm ci)"
    result = subprocess.run(
        [str(BUF) if BUF.exists() else "buf", "lint"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
