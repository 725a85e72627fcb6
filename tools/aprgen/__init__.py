# SPDX-License-Identifier: MIT
"""Generator of small random-weight GGUF models (llama, qwen2) for apr's tests."""
