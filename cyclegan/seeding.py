"""All randomness of a run derives from its seed here, by name and counters.

Stateless derivation (seed, name, counters) -> generator means data order, crops and flips at any position can
be recomputed after a resume without replaying history; only the pools carry generator state, which
checkpoints save.
"""

from __future__ import annotations

import hashlib

import torch


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed that depends on the run seed and every key (stable across processes and platforms)."""
    text = ":".join(str(k) for k in (seed, *keys)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") & (2**63 - 1)


def derive_generator(seed: int, *keys: object) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(derive_seed(seed, *keys))
    return gen


def rng_state() -> dict:
    """Global torch RNG states (only dropout uses them during training)."""
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
