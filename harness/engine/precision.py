"""Precision policies: fp32, fp16 (mixed_float16 + dynamic loss scaling), bf16 (mixed_bfloat16)."""

from __future__ import annotations

from dataclasses import dataclass

POLICIES = {"fp32": "float32", "fp16": "mixed_float16", "bf16": "mixed_bfloat16"}
COMPUTE_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


@dataclass(frozen=True)
class Precision:
    """What a precision name means for layers and optimizers."""

    name: str

    @property
    def policy(self) -> str:
        """Keras dtype policy name: pass as ``dtype=`` to layers."""
        return POLICIES[self.name]

    @property
    def compute_dtype(self) -> str:
        return COMPUTE_DTYPES[self.name]

    @property
    def loss_scaling(self) -> bool:
        """fp16 needs dynamic loss scaling; bf16 has float32's exponent range and does not."""
        return self.name == "fp16"
