# SPDX-License-Identifier: MIT
"""No Python script in tests/ or tools/ that imports anything beyond the standard library may run
through `#!/usr/bin/env python3`: that finds the system Python, which on a fresh Debian 12 has
no numpy or gguf. Such scripts are run with the venv's interpreter explicitly (CTest passes
Python3_EXECUTABLE; docs say .venv/bin/python)."""

import ast
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHEBANG = "#!/usr/bin/env python3"


def non_stdlib_imports(source: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    # A local module (aprgen, ref_forward) counts too: it imports numpy and gguf itself.
    return {n for n in names if n not in sys.stdlib_module_names and n != "__future__"}


def offenders(root: Path) -> list[str]:
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in ("", ".py"):
            continue
        try:
            text = path.read_text()
        except (UnicodeDecodeError, OSError):
            continue
        if not text.startswith(SHEBANG):
            continue
        try:
            imports = non_stdlib_imports(text)
        except SyntaxError:
            continue  # not Python after all
        if imports:
            found.append(f"{path.relative_to(REPO)} imports {', '.join(sorted(imports))}")
    return found


def test_no_system_python_shebang_on_scripts_with_dependencies():
    bad = offenders(REPO / "tests") + offenders(REPO / "tools")
    assert not bad, "scripts that need the venv but run through the system Python:\n" + "\n".join(bad)


def test_the_check_finds_an_offender(tmp_path):
    (tmp_path / "uses_numpy.py").write_text(f"{SHEBANG}\nimport json\nimport numpy as np\n")
    (tmp_path / "stdlib_only.py").write_text(f"{SHEBANG}\nimport json, sys\n")
    (tmp_path / "local.py").write_text(f"{SHEBANG}\nfrom aprgen.config import make_config\n")
    global REPO
    saved, REPO = REPO, tmp_path
    try:
        assert offenders(tmp_path) == ["local.py imports aprgen", "uses_numpy.py imports numpy"]
    finally:
        REPO = saved
