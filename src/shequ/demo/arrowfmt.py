"""Vectorised identifier formatting straight into Arrow string arrays (no Python loops)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

U64 = npt.NDArray[np.uint64]
HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(values: npt.NDArray[np.integer]) -> U64:
    """SplitMix64 finaliser: a bijection on 64-bit integers that looks random."""
    z = np.asarray(values).astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def seed_key(seed: int, salt: int) -> np.uint64:
    """A per-seed, per-purpose 64-bit key."""
    return np.uint64(mix64(np.array([seed * 1_000_003 + salt], dtype=np.uint64))[0])


def _nibbles(values: U64, digits: int) -> npt.NDArray[np.uint8]:
    """Lower-case hex digits (the last ``digits`` of 16) of each value, as an (n, digits) array."""
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    pairs = np.stack([raw >> 4, raw & 15], axis=2).reshape(-1, 16)
    return HEX[pairs[:, 16 - digits:]]


def _strings(matrix: npt.NDArray[np.uint8]) -> pa.StringArray:
    n, width = matrix.shape
    offsets = np.arange(0, n * width + 1, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix).tobytes()
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(data))


def prefixed_hex(prefix: str, values: U64, digits: int = 16) -> pa.StringArray:
    """Strings ``prefix`` + ``digits`` hex digits of each value, e.g. ``sess-0f3a...``."""
    head = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    nib = _nibbles(values, digits)
    matrix = np.concatenate([np.broadcast_to(head, (nib.shape[0], head.size)), nib], axis=1)
    return _strings(matrix)


def uuid_strings(high: U64, low: U64) -> pa.StringArray:
    """UUID-formatted strings (8-4-4-4-12 hex) from two 64-bit halves."""
    a, b = _nibbles(high, 16), _nibbles(low, 16)
    dash = np.full((a.shape[0], 1), ord("-"), dtype=np.uint8)
    parts = [a[:, :8], dash, a[:, 8:12], dash, a[:, 12:16], dash, b[:, :4], dash, b[:, 4:]]
    return _strings(np.concatenate(parts, axis=1))


def take_strings(vocab: pa.Array, index: npt.NDArray[np.int64]) -> pa.Array:
    """``vocab[index]`` with ``index < 0`` as null."""
    mask = index < 0
    idx = pa.array(np.where(mask, 0, index), mask=mask if mask.any() else None)
    return vocab.take(idx)
