# SPDX-License-Identifier: MIT
"""The cpu-fault plugin's kernel-level and conditional faults seen through apr itself
(plugins/cpu/src/fault_injection.hpp): a `kernel` fault changes an untraced `apr run`, where a
trace-emission fault cannot; `rows=1` leaves the prompt's forward pass alone and changes the
decode steps; a `scale` fault multiplies the traced stage by its magnitude exactly."""

import numpy as np

from conftest import read_aprt

TOKENS = "1,17,250,99,4,33"
SCALE_FAULT = "1:attn_out:1.5@scale,kernel"


def run_logits(run_apr, model, tmp_path, name, backend, fault=None):
    """The logits behind 4 greedy tokens (row 0: the prompt's forward pass, then one row per
    decode step) of `apr run` on backend, under APR_CPU_FAULT=fault."""
    out = tmp_path / f"{name}.npy"
    env = {"APR_CPU_FAULT": fault} if fault else None
    run_apr(f"--backend={backend}", "run", model, "--tokens", TOKENS, "-n", "4", "--temperature",
            "0", "--ignore-eos", "--dump-logits", out, env=env, check_exit=0)
    logits = np.load(out)
    assert logits.ndim == 2 and logits.shape[0] == 4, logits.shape
    return logits


def test_kernel_fault_changes_an_untraced_run(run_apr, make_model, tmp_path):
    model = make_model("llama")
    clean = run_logits(run_apr, model, tmp_path, "cpu", "cpu")
    # The twin without a fault, and with a trace-emission fault that an untraced run never meets,
    # computes what cpu computes, bit for bit.
    for name, fault in [("none", None), ("emission", "1:attn_out:1.5@scale")]:
        same = run_logits(run_apr, model, tmp_path, name, "cpu-fault", fault)
        assert np.array_equal(same, clean), name
    # Inside the kernel it applies without any trace sink, from the prompt's pass on.
    faulty = run_logits(run_apr, model, tmp_path, "kernel", "cpu-fault", SCALE_FAULT)
    assert not np.array_equal(faulty[0], clean[0])
    # Decode steps only: the prompt's pass (row 0) is untouched, the first decode step is not.
    decode = run_logits(run_apr, model, tmp_path, "decode", "cpu-fault", SCALE_FAULT + ",rows=1")
    assert np.array_equal(decode[0], clean[0])
    assert not np.array_equal(decode[1], clean[1])


def test_scale_fault_multiplies_the_traced_stage(run_apr, make_model, tmp_path):
    model = make_model("qwen2")
    dirs = {}
    for backend, fault in [("cpu", None), ("cpu-fault", SCALE_FAULT)]:
        out = tmp_path / backend
        run_apr(f"--backend={backend}", "trace", model, "--tokens", TOKENS, "--save-tensor",
                "attention,attn_out,post_attn_residual", "--save-tensor-layers", "0..2",
                "--save-tensor-dir", out, env={"APR_CPU_FAULT": fault} if fault else None,
                check_exit=0)
        dirs[backend] = out

    def stage(backend, layer, name):
        return read_aprt(dirs[backend] / f"layer-{layer}" / f"{name}.bin")[1]

    for name in ("attention", "attn_out", "post_attn_residual"):
        assert np.array_equal(stage("cpu-fault", 0, name), stage("cpu", 0, name)), name
    # Layer 1: the same attention input, its projection times 1.5 (cosine 1), and the residual
    # that adds it no longer a multiple of the clean one.
    assert np.array_equal(stage("cpu-fault", 1, "attention"), stage("cpu", 1, "attention"))
    clean, faulty = stage("cpu", 1, "attn_out"), stage("cpu-fault", 1, "attn_out")
    assert np.any(clean != 0)
    assert np.array_equal(faulty, (clean * np.float32(1.5)).astype(np.float32))
    assert not np.array_equal(stage("cpu-fault", 1, "post_attn_residual"),
                              stage("cpu", 1, "post_attn_residual"))
