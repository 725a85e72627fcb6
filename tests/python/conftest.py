# SPDX-License-Identifier: MIT
"""Shared fixtures: import paths for the generator and the reference, and a model cache.

Models are generated at test time into $APR_TEST_MODELS_DIR (default /tmp/apr-test-models; CTest
points it into the build tree). File names carry a hash of the generator's sources, so a changed
generator never serves a stale file.
"""

import hashlib
import os
import sys
from pathlib import Path

# Single-threaded BLAS: the reference's matrices are small and threads only contend (see
# ref_forward.py). Must be set before numpy is first imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"
REFERENCE = REPO / "tests" / "reference"
for p in (TOOLS, REFERENCE):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from aprgen.config import make_config  # noqa: E402
from aprgen.writer import write_model  # noqa: E402


def generator_fingerprint() -> str:
    digest = hashlib.sha256()
    for src in sorted((TOOLS / "aprgen").glob("*.py")):
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    return digest.hexdigest()[:12]


class ModelCache:
    def __init__(self, root: Path):
        self.root = root
        self.fingerprint = generator_fingerprint()

    def get(self, arch: str, preset: str, file_type: str, seed: int = 1234, **overrides) -> Path:
        cfg = make_config(arch, preset, file_type, seed, **overrides)
        extra = "".join(f"-{k}{v}" for k, v in sorted(overrides.items()) if v is not None)
        name = f"{arch}-{preset}-{file_type.lower()}-s{seed}{extra}-{self.fingerprint}.gguf"
        path = self.root / name
        if not path.exists():
            write_model(cfg, path)
        return path


@pytest.fixture(scope="session")
def models() -> ModelCache:
    root = Path(os.environ.get("APR_TEST_MODELS_DIR", "/tmp/apr-test-models"))
    root.mkdir(parents=True, exist_ok=True)
    return ModelCache(root)
