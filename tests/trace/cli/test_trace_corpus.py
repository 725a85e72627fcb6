# SPDX-License-Identifier: MIT
"""Malformed APRT files and trace manifests: `apr diff --values` refuses each with exactly its
expected one-line error and exit status 2 — never a crash, a hang on a FIFO, or a huge read."""

import json
import os
import shutil
import struct

import numpy as np
import pytest



def assert_one_line_error(proc, expected: str):
    assert proc.returncode == 2, f"exit {proc.returncode}, want 2\nstderr: {proc.stderr[-2000:]}"
    errors = [line for line in proc.stderr.splitlines()
              if line.startswith(("apr: error", "apr: internal", "apr: backend"))]
    assert errors == [expected], proc.stderr[-2000:]


def aprt(layer: int, values, count=None) -> bytes:
    values = np.asarray(values, dtype="<f4")
    return (b"APRT" + struct.pack("<II", layer, len(values) if count is None else count)
            + values.tobytes())


GOOD = aprt(0, [1.0, 2.0, 3.0, 4.0])

# (name, bytes of the bad file, expected message after "{path}: ")
APRT_CASES = [
    ("empty", b"", "not an APRT file: 0 bytes, shorter than the 12-byte header"),
    ("11 bytes", GOOD[:11], "not an APRT file: 11 bytes, shorter than the 12-byte header"),
    ("bad magic", b"APRX" + GOOD[4:],
     'not an APRT file: bad magic at byte offset 0 (expected "APRT")'),
    ("count larger than the data", aprt(0, [1, 2, 3], count=4),
     "element count 4 at byte offset 8 needs 28 bytes but the file has 24"),
    ("count smaller than the data", aprt(0, [1, 2, 3, 4, 5], count=4),
     "element count 4 at byte offset 8 needs 28 bytes but the file has 32"),
    ("count 2^32-1 in a small file", aprt(0, [1, 2, 3, 4], count=0xFFFFFFFF),
     "element count 4294967295 at byte offset 8 needs 17179869192 bytes but the file has 28"),
    ("header only with a count", aprt(0, [], count=1),
     "element count 1 at byte offset 8 needs 16 bytes but the file has 12"),
]


@pytest.mark.parametrize("name,data,message", APRT_CASES, ids=[c[0] for c in APRT_CASES])
def test_malformed_aprt(run_apr, tmp_path, name, data, message):
    good = tmp_path / "good.bin"
    good.write_bytes(GOOD)
    bad = tmp_path / "bad.bin"
    bad.write_bytes(data)
    assert_one_line_error(run_apr("diff", "--values", good, bad), f"apr: error: {bad}: {message}")


def test_aprt_paths_that_are_not_files(run_apr, tmp_path):
    good = tmp_path / "good.bin"
    good.write_bytes(GOOD)
    fifo = tmp_path / "fifo.bin"
    os.mkfifo(fifo)  # refused at once, never waited on
    assert_one_line_error(run_apr("diff", "--values", good, fifo),
                          f"apr: error: {fifo}: not a regular file (a FIFO, socket or device), "
                          "not an APRT file")
    assert_one_line_error(run_apr("diff", "--values", good, "/dev/zero"),
                          "apr: error: /dev/zero: not a regular file (a FIFO, socket or device), "
                          "not an APRT file")
    big = tmp_path / "big.bin"  # 6 GiB, sparse: refused from its header, never read whole
    with open(big, "wb") as f:
        f.write(aprt(0, [], count=4))
        f.truncate(6 << 30)
    assert_one_line_error(run_apr("diff", "--values", good, big),
                          f"apr: error: {big}: element count 4 at byte offset 8 needs 28 bytes "
                          f"but the file has {6 << 30}")
    other_layer = tmp_path / "l1.bin"
    other_layer.write_bytes(aprt(1, [1, 2, 3, 4]))
    proc = run_apr("diff", "--values", good, other_layer)
    assert proc.returncode == 2 and "layer mismatch" in proc.stderr


# --- manifests -------------------------------------------------------------------------------

SEQ, HIDDEN = 2, 4


def make_trace(root):
    """A small valid trace directory: embedding and attn_norm of layer 0, and lm_head."""
    root.mkdir()
    (root / "layer-0").mkdir()
    files = []
    rng = np.random.default_rng(5)
    for stage, layer, shape in [("embedding", 0, [SEQ, HIDDEN]), ("attn_norm", 0, [SEQ, HIDDEN]),
                                ("lm_head", None, [8])]:
        rel = f"layer-{layer}/{stage}.bin" if layer is not None else f"{stage}.bin"
        values = rng.standard_normal(int(np.prod(shape)))
        (root / rel).write_bytes(aprt(0xFFFFFFFF if layer is None else layer, values))
        files.append({"path": rel, "stage": stage, "layer": layer, "shape": shape, "dtype": "f32",
                      "nbytes": 4 * int(np.prod(shape))})
    manifest = {"format": "apr-trace-manifest-v1",
                "model": {"path": "/m.gguf", "sha256": "ab" * 32, "architecture": "qwen2"},
                "backend": {"name": "cpu", "plugin_version": "1"}, "prompt": None,
                "token_ids": [1, 2], "files": files}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def with_file(m, i, **changes):
    m["files"][i].update(changes)
    return m


# (name, edit of the manifest dict or a text for manifest.json, expected after "{manifest}: ")
MANIFEST_CASES = [
    ("not JSON", "{", None),
    ("a JSON array", "[]", "not an apr trace manifest (not a JSON object)"),
    ("wrong format", lambda m: {**m, "format": "apr-trace-manifest-v9"},
     'not an apr trace manifest ("format" is not "apr-trace-manifest-v1" or '
     '"apr-trace-manifest-v2")'),
    ("model not an object", lambda m: {**m, "model": "x"}, '"model": is not an object'),
    ("sha256 not hex", lambda m: {**m, "model": {**m["model"], "sha256": "zz" * 32}},
     '"model.sha256": is not 64 hexadecimal digits'),
    ("no files", lambda m: {k: v for k, v in m.items() if k != "files"}, '"files": missing'),
    ("files not an array", lambda m: {**m, "files": {}}, '"files": is not an array'),
    ("token id negative", lambda m: {**m, "token_ids": [1, -2]}, '"token_ids"[1]: is negative'),
    ("token id a float", lambda m: {**m, "token_ids": [1.5, 2]},
     '"token_ids"[0]: is not an integer (1.5)'),
    ("token id beyond int32", lambda m: {**m, "token_ids": [1, 1 << 31]},
     '"token_ids"[1]: 2147483648 is out of range (at most 2147483647)'),
    ("unknown stage", lambda m: with_file(m, 1, stage="attn_nrom"),
     'files[1].stage: unknown stage "attn_nrom"'),
    ("path outside the directory", lambda m: with_file(m, 1, path="../attn_norm.bin"),
     'files[1].path: "../attn_norm.bin" does not match its stage and layer '
     '(expected "layer-0/attn_norm.bin")'),
    ("layer negative", lambda m: with_file(m, 1, layer=-1), "files[1].layer: is negative"),
    ("layer a float", lambda m: with_file(m, 1, layer=0.5),
     "files[1].layer: is not an integer (0.5)"),
    ("layer null for a per-layer stage", lambda m: with_file(m, 1, layer=None),
     "files[1].layer: is null but attn_norm belongs to a layer"),
    ("embedding in layer 1", lambda m: with_file(m, 0, layer=1, path="layer-1/embedding.bin"),
     "files[0].layer: embedding has no layer 1"),
    ("shape 6.7e25", lambda m: with_file(m, 1, shape=[6.7e25]),
     "files[1].shape[0]: is not an integer (6.7e+25)"),
    ("shape negative", lambda m: with_file(m, 1, shape=[2, -4]), "files[1].shape[1]: is negative"),
    ("shape product overflows", lambda m: with_file(m, 1, shape=[65536, 65536, 2]),
     "files[1].shape: the element count overflows an APRT file's u32 count"),
    ("shape dimension beyond u32", lambda m: with_file(m, 1, shape=[1 << 40]),
     "files[1].shape[0]: 1099511627776 is out of range (at most 4294967295)"),
    ("shape empty", lambda m: with_file(m, 1, shape=[]),
     "files[1].shape: is not an array of 1 to 4 dimensions"),
    ("shape of 5 dimensions", lambda m: with_file(m, 1, shape=[1, 1, 2, 4, 1]),
     "files[1].shape: is not an array of 1 to 4 dimensions"),
    ("dtype f16", lambda m: with_file(m, 1, dtype="f16"),
     'files[1].dtype: "f16" is not f32, the only APRT type'),
    ("nbytes disagrees", lambda m: with_file(m, 1, nbytes=33),
     "files[1].nbytes: 33 disagrees with the shape (8 f32 elements)"),
    ("listed twice", lambda m: {**m, "files": m["files"] + [m["files"][1]]},
     'files[3]: "layer-0/attn_norm.bin" is listed twice'),
    ("shape disagrees with the file", lambda m: with_file(m, 1, shape=[3, 4], nbytes=48),
     "files[1] (layer-0/attn_norm.bin): shape holds 12 elements but the file has 8"),
    ("layer disagrees with the file header",
     lambda m: with_file(m, 2, stage="final_norm", path="final_norm.bin"), None),
]


@pytest.mark.parametrize("name,edit,message", MANIFEST_CASES, ids=[c[0] for c in MANIFEST_CASES])
def test_malformed_manifest(run_apr, tmp_path, name, edit, message):
    good = tmp_path / "good"
    bad = tmp_path / "bad"
    m = make_trace(good)
    shutil.copytree(good, bad)
    text = edit if isinstance(edit, str) else json.dumps(edit(json.loads(json.dumps(m))))
    manifest = bad / "manifest.json"
    manifest.write_text(text)
    if name == "layer disagrees with the file header":
        (bad / "final_norm.bin").write_bytes(aprt(3, np.ones(8)))
        message = "files[2] (final_norm.bin): layer null but the file's header says 3"
    if name == "not JSON":
        proc = run_apr("diff", "--values", good, bad)
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"apr: error: {manifest}: not valid JSON: ")
        assert proc.stderr.count("\n") == 1
        return
    assert_one_line_error(run_apr("diff", "--values", good, bad),
                          f"apr: error: {manifest}: {message}")


def test_manifest_and_listed_files_that_are_not_files(run_apr, tmp_path):
    good = tmp_path / "good"
    make_trace(good)
    fifo_manifest = tmp_path / "fifo-manifest"
    shutil.copytree(good, fifo_manifest)
    (fifo_manifest / "manifest.json").unlink()
    os.mkfifo(fifo_manifest / "manifest.json")
    assert_one_line_error(run_apr("diff", "--values", good, fifo_manifest),
                          f"apr: error: {fifo_manifest / 'manifest.json'}: the trace manifest "
                          "is not a regular file")
    fifo_stage = tmp_path / "fifo-stage"
    shutil.copytree(good, fifo_stage)
    stage = fifo_stage / "layer-0" / "attn_norm.bin"
    stage.unlink()
    os.mkfifo(stage)
    assert_one_line_error(run_apr("diff", "--values", good, fifo_stage),
                          f"apr: error: {stage}: not a regular file (a FIFO, socket or device), "
                          "not an APRT file")
    huge = tmp_path / "huge"
    shutil.copytree(good, huge)
    with open(huge / "manifest.json", "r+b") as f:
        f.truncate(65 << 20)
    assert_one_line_error(run_apr("diff", "--values", good, huge),
                          f"apr: error: {huge / 'manifest.json'}: the trace manifest is "
                          f"{65 << 20} bytes, more than the {64 << 20} a manifest may have")


def test_the_valid_trace_compares_clean(run_apr, tmp_path):
    """The corpus' base directory is valid: each case fails because of its one change."""
    make_trace(tmp_path / "a")
    make_trace(tmp_path / "b")
    proc = run_apr("diff", "--values", tmp_path / "a", tmp_path / "b")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no divergence" in proc.stdout


def test_the_corpus_is_large_enough():
    assert len(APRT_CASES) + len(MANIFEST_CASES) + 6 >= 20
