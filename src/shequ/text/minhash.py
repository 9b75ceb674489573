"""Near-duplicate detection: MinHash signatures of character shingles with an LSH index.

Text is normalised (``shequ.text.normalise``), whitespace removed, and cut into
overlapping ``shingle``-character windows. Each window is hashed from its code points
(a 64-bit polynomial over the code points with a splitmix64 finish, top 32 bits), never
with Python's salted ``hash()``, so signatures are the same in every process. Permutation
``i`` maps a shingle hash ``x`` to ``(a_i * x + b_i) mod p`` with ``p = 2^32 - 5`` (the
product fits in 64 bits exactly); the signature is the minimum over the shingles, for
``num_perm`` permutations drawn from a seeded PCG64 generator.

The index splits a signature into ``bands`` bands of ``num_perm / bands`` rows; two texts
become candidates when one band is identical, which for Jaccard similarity ``s`` happens
with probability ``1 - (1 - s^r)^b`` (with 32 × 4: 0.05 at s = 0.2, 0.87 at s = 0.5,
0.9997 at s = 0.8). Candidates are ranked by estimated Jaccard (the share of equal
signature values) or, with ``exact=True``, by the exact Jaccard of their shingle sets.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shequ.core.errors import ValidationFailed
from shequ.text.normalise import normalise

__all__ = ["PRIME", "Key", "Match", "MinHashIndex", "Originality", "Signature",
           "estimated_similarity"]

Key = str | int
Signature = npt.NDArray[np.uint32]
TextOrSignature = str | bytes | Signature

PRIME = 4_294_967_291  # the largest prime below 2^32
_PRIME = np.uint64(PRIME)
_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)
_PAD = 0x110000  # beyond Unicode: pads a text shorter than one shingle
_BLOCK = 16_384  # shingles per permutation block (num_perm × block × 8 bytes of scratch)
_HEADER = struct.Struct("<2sBBHI")  # magic, format version, shingle, num_perm, seed
_MAGIC = b"MH"
_VERSION = 1


@dataclass(frozen=True)
class Match:
    """An indexed text similar to the query, with its (estimated or exact) Jaccard."""

    key: Key
    similarity: float


@dataclass(frozen=True)
class Originality:
    """1 − the highest similarity to an earlier text, and the earlier texts above threshold."""

    score: float
    sources: list[Match] = field(default_factory=list)


def _mix(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser, in place (uint64 arithmetic wraps)."""
    values ^= values >> np.uint64(30)
    values *= _MIX_1
    values ^= values >> np.uint64(27)
    values *= _MIX_2
    values ^= values >> np.uint64(31)
    return values


class MinHashIndex:
    """MinHash LSH index over texts, filled incrementally as posts arrive.

    Reads may run concurrently; guard ``add``/``add_many``/``remove`` with a lock when
    threads share an index.
    """

    def __init__(self, num_perm: int = 128, bands: int = 32, shingle: int = 3,
                 threshold: float = 0.5, *, seed: int = 1, exact: bool = False) -> None:
        if isinstance(num_perm, bool) or not isinstance(num_perm, int) \
                or not 8 <= num_perm <= 1024:
            raise ValidationFailed("invalid_num_perm", "must be a whole number in 8..1024",
                                   "num_perm")
        if isinstance(bands, bool) or not isinstance(bands, int) or bands < 1 \
                or num_perm % bands:
            raise ValidationFailed("invalid_bands",
                                   f"must be a positive divisor of num_perm ({num_perm})",
                                   "bands")
        if isinstance(shingle, bool) or not isinstance(shingle, int) or not 1 <= shingle <= 8:
            raise ValidationFailed("invalid_shingle", "must be a whole number in 1..8",
                                   "shingle")
        if not isinstance(threshold, int | float) or not 0.0 < threshold <= 1.0:
            raise ValidationFailed("invalid_threshold", "must be in (0, 1]", "threshold")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
            raise ValidationFailed("invalid_seed", "must be a whole number in 0..2^32-1",
                                   "seed")
        self.num_perm = num_perm
        self.bands = bands
        self.rows = num_perm // bands
        self.shingle = shingle
        self.threshold = float(threshold)
        self.seed = seed
        self.exact = exact
        generator = np.random.default_rng(seed)
        self._a = generator.integers(1, PRIME, num_perm, dtype=np.uint64)[:, None]
        self._b = generator.integers(0, PRIME, num_perm, dtype=np.uint64)[:, None]
        self._band_salts = _mix(generator.integers(0, 2**63, bands, dtype=np.uint64))
        self._signatures: Signature = np.empty((0, num_perm), dtype=np.uint32)
        self._count = 0
        self._keys: list[Key] = []
        self._positions: dict[Key, int] = {}
        self._removed: set[int] = set()
        self._buckets: dict[int, list[int]] = {}
        self._shingles: list[npt.NDArray[np.uint32]] = []

    # ---- signatures ----

    def _shingle_hashes(self, texts: Sequence[str], attrs: Sequence[str],
                        ) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.intp]]:
        """Hashes of every shingle of every text, and where each text's shingles start.

        ``attrs`` names each text in errors (``text``, ``texts[3]``, ``items[7].value``).
        """
        code_points: list[npt.NDArray[np.uint32]] = []
        starts: list[int] = []
        total = 0
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValidationFailed("invalid_text",
                                       f"must be a string, not {type(text).__name__}",
                                       attrs[index])
            compact = "".join(normalise(text).split())
            if not compact:
                raise ValidationFailed("empty_text",
                                       "has no characters to compare after normalisation",
                                       attrs[index])
            points = np.frombuffer(compact.encode("utf-32-le"), dtype="<u4")
            if len(points) < self.shingle:
                points = np.concatenate([points, np.full(self.shingle - len(points), _PAD,
                                                         dtype="<u4")])
            code_points.append(points.astype(np.uint32))
            starts.append(total)
            total += len(points) - self.shingle + 1
        joined = np.concatenate(code_points).astype(np.uint64)
        lengths = np.array([len(points) for points in code_points], dtype=np.intp)
        ends = np.cumsum(lengths)
        # window w of the joined array is valid when it lies inside one text
        window_count = len(joined) - self.shingle + 1
        hashes = joined[:window_count].copy()
        for offset in range(1, self.shingle):
            hashes *= _MULTIPLIER
            hashes += joined[offset:offset + window_count]
        valid = np.ones(window_count, dtype=bool)
        for offset in range(1, self.shingle):
            cut = ends[:-1] - offset
            valid[cut[cut >= 0]] = False
        hashes = _mix(hashes[valid]) >> np.uint64(32)
        return hashes, np.array(starts, dtype=np.intp)

    def _minimums(self, hashes: npt.NDArray[np.uint64],
                  starts: npt.NDArray[np.intp]) -> Signature:
        """Per text, the minimum of every permutation over its shingles."""
        result = np.empty((len(starts), self.num_perm), dtype=np.uint32)
        bounds = np.append(starts, len(hashes))
        # Scratch reused across blocks; ``y mod p`` as ``y - (y // p) * p`` because numpy
        # divides by a scalar with libdivide, several times faster than its ``remainder``.
        size = min(len(hashes), _BLOCK) * self.num_perm
        values_buffer = np.empty(size, dtype=np.uint64)
        quotient_buffer = np.empty(size, dtype=np.uint64)
        text = 0
        while text < len(starts):
            last = int(np.searchsorted(bounds, bounds[text] + _BLOCK, side="right")) - 1
            last = max(last, text + 1)
            block = hashes[bounds[text]:bounds[last]]
            if len(block) * self.num_perm > len(values_buffer):
                values_buffer = np.empty(len(block) * self.num_perm, dtype=np.uint64)
                quotient_buffer = np.empty_like(values_buffer)
            shape = (self.num_perm, len(block))
            values = values_buffer[:len(block) * self.num_perm].reshape(shape)
            quotients = quotient_buffer[:len(block) * self.num_perm].reshape(shape)
            np.multiply(self._a, block[None, :], out=values)
            values += self._b
            np.floor_divide(values, _PRIME, out=quotients)
            quotients *= _PRIME
            values -= quotients
            local = bounds[text:last] - bounds[text]
            result[text:last] = np.minimum.reduceat(values, local, axis=1).T
            text = last
        return result

    def signatures(self, texts: Sequence[str]) -> Signature:
        """Signatures of ``texts``, one row each (``uint32``, ``num_perm`` columns)."""
        if isinstance(texts, str):
            raise ValidationFailed("invalid_texts", "must be a list of texts, not one text",
                                   "texts")
        if not texts:
            return np.empty((0, self.num_perm), dtype=np.uint32)
        return self._minimums(*self._shingle_hashes(
            texts, [f"texts[{index}]" for index in range(len(texts))]))

    def signature(self, text: str) -> Signature:
        """The MinHash signature of ``text`` (``uint32``, ``num_perm`` values)."""
        signature: Signature = self._minimums(*self._shingle_hashes([text], ["text"]))[0]
        return signature

    def shingles(self, text: str) -> npt.NDArray[np.uint32]:
        """The sorted distinct shingle hashes of ``text`` (what exact Jaccard compares)."""
        hashes, _ = self._shingle_hashes([text], ["text"])
        return np.unique(hashes).astype(np.uint32)

    def signature_to_bytes(self, signature: Signature) -> bytes:
        """A compact, self-describing form of ``signature`` for storage (10 + 4 × num_perm)."""
        checked = self._checked_signature(signature, "signature")
        return _HEADER.pack(_MAGIC, _VERSION, self.shingle, self.num_perm, self.seed) + \
            checked.astype("<u4").tobytes()

    def signature_from_bytes(self, data: bytes) -> Signature:
        """The signature stored by ``signature_to_bytes``; refuses another index's parameters."""
        if not isinstance(data, bytes | bytearray | memoryview) or len(data) < _HEADER.size:
            raise ValidationFailed("invalid_signature", "is not a stored signature",
                                   "signature")
        magic, version, shingle, num_perm, seed = _HEADER.unpack_from(data)
        if magic != _MAGIC or version != _VERSION:
            raise ValidationFailed("invalid_signature", "is not a stored signature",
                                   "signature")
        if (shingle, num_perm, seed) != (self.shingle, self.num_perm, self.seed):
            raise ValidationFailed(
                "incompatible_signature",
                f"was made with shingle={shingle}, num_perm={num_perm}, seed={seed}; this index "
                f"uses shingle={self.shingle}, num_perm={self.num_perm}, seed={self.seed}",
                "signature")
        if len(data) != _HEADER.size + 4 * num_perm:
            raise ValidationFailed("invalid_signature", "has the wrong length", "signature")
        return np.frombuffer(bytes(data), dtype="<u4", offset=_HEADER.size).astype(np.uint32)

    def _checked_signature(self, signature: object, attr: str) -> Signature:
        if not isinstance(signature, np.ndarray) or signature.shape != (self.num_perm,) \
                or not np.issubdtype(signature.dtype, np.integer):
            raise ValidationFailed("invalid_signature",
                                   f"must be {self.num_perm} unsigned integers", attr)
        return signature.astype(np.uint32, copy=False)

    def _resolve(self, value: TextOrSignature, attr: str) -> Signature:
        if isinstance(value, str):
            return self.signature(value)
        if isinstance(value, bytes | bytearray | memoryview):
            return self.signature_from_bytes(bytes(value))
        return self._checked_signature(value, attr)

    # ---- the index ----

    def band_keys(self, signatures: Signature) -> npt.NDArray[np.int64]:
        """``(n, bands)`` signed 64-bit LSH bucket keys of ``(n, num_perm)`` signatures.

        Each band's rows are folded into a 64-bit hash salted per band, so different bands
        never share a key by design; signed so a database BIGINT column can store them.
        Two signatures are LSH candidates when they share any key.
        """
        matrix = np.asarray(signatures)
        if matrix.ndim != 2 or matrix.shape[1] != self.num_perm:
            raise ValidationFailed("invalid_signature",
                                   f"must be rows of {self.num_perm} unsigned integers",
                                   "signatures")
        values = matrix.astype(np.uint64).reshape(len(matrix), self.bands, self.rows)
        keys = np.broadcast_to(self._band_salts, (len(matrix), self.bands)).copy()
        for row in range(self.rows):
            keys ^= values[:, :, row]
            keys *= _MULTIPLIER
        return _mix(keys).view(np.int64)

    def _band_keys(self, signatures: Signature) -> list[list[int]]:
        result: list[list[int]] = self.band_keys(signatures).tolist()
        return result

    def __len__(self) -> int:
        return len(self._positions)

    def __contains__(self, key: object) -> bool:
        return key in self._positions

    def _append(self, keys: Sequence[Key], signatures: Signature,
                shingles: Sequence[npt.NDArray[np.uint32]]) -> None:
        needed = self._count + len(keys)
        if needed > len(self._signatures):
            grown = np.empty((max(needed, 2 * len(self._signatures), 1024), self.num_perm),
                             dtype=np.uint32)
            grown[:self._count] = self._signatures[:self._count]
            self._signatures = grown
        self._signatures[self._count:needed] = signatures
        buckets = self._buckets
        for offset, (key, band_keys) in enumerate(zip(keys, self._band_keys(signatures),
                                                      strict=True)):
            position = self._count + offset
            previous = self._positions.get(key)
            if previous is not None:
                self._removed.add(previous)
            self._positions[key] = position
            self._keys.append(key)
            for band_key in band_keys:
                bucket = buckets.get(band_key)
                if bucket is None:
                    buckets[band_key] = [position]
                else:
                    bucket.append(position)
        if self.exact:
            self._shingles.extend(shingles)
        self._count = needed

    @staticmethod
    def _checked_key(key: object, attr: str) -> Key:
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ValidationFailed("invalid_key", "must be a string or a whole number", attr)
        return key

    def add(self, key: Key, value: TextOrSignature) -> None:
        """Index ``value`` (a text, a signature or its stored bytes) under ``key``.

        Adding a key again replaces its earlier text. With ``exact=True`` only texts can be
        added (the shingles are kept for exact Jaccard).
        """
        checked = self._checked_key(key, "key")
        shingles = self._exact_shingles(value, "value")
        self._append([checked], self._resolve(value, "value")[None, :], shingles)

    def _exact_shingles(self, value: object, attr: str) -> list[npt.NDArray[np.uint32]]:
        if not self.exact:
            return []
        if not isinstance(value, str):
            raise ValidationFailed("text_required",
                                   "must be a text: this index keeps shingles for exact Jaccard",
                                   attr)
        return [self.shingles(value)]

    def add_many(self, items: Iterable[tuple[Key, TextOrSignature]]) -> None:
        """Index many ``(key, text or signature)`` pairs; texts are hashed in batches.

        A bad item raises ``ValidationFailed`` naming it (``items[7].value``); the batches
        before it stay indexed.
        """
        keys: list[Key] = []
        texts: list[str] = []
        attrs: list[str] = []
        for index, (key, value) in enumerate(items):
            checked = self._checked_key(key, f"items[{index}].key")
            attr = f"items[{index}].value"
            if isinstance(value, str):
                keys.append(checked)
                texts.append(value)
                attrs.append(attr)
                if len(texts) >= 2048:
                    self._add_texts(keys, texts, attrs)
                    keys, texts, attrs = [], [], []
            else:
                self._add_texts(keys, texts, attrs)
                keys, texts, attrs = [], [], []
                shingles = self._exact_shingles(value, attr)
                self._append([checked], self._resolve(value, attr)[None, :], shingles)
        self._add_texts(keys, texts, attrs)

    def _add_texts(self, keys: list[Key], texts: list[str], attrs: list[str]) -> None:
        if not keys:
            return
        signatures = self._minimums(*self._shingle_hashes(texts, attrs))
        shingles = [self.shingles(text) for text in texts] if self.exact else []
        self._append(keys, signatures, shingles)

    def remove(self, key: Key) -> None:
        """Forget ``key`` (its bucket entries are skipped from now on)."""
        position = self._positions.pop(key, None)
        if position is None:
            raise ValidationFailed("unknown_key", "is not in the index", "key")
        self._removed.add(position)

    def _matches(self, value: TextOrSignature, k: int, before: int | None,
                 threshold: float) -> tuple[list[Match], float]:
        """Matches at or above ``threshold`` and the best similarity of any candidate."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValidationFailed("invalid_k", "must be a positive whole number", "k")
        signature = self._resolve(value, "text")
        found: set[int] = set()
        for band_key in self._band_keys(signature[None, :])[0]:
            bucket = self._buckets.get(band_key)
            if bucket is not None:
                found.update(bucket)
        found -= self._removed
        if before is not None:
            found = {position for position in found if position < before}
        if not found:
            return [], 0.0
        positions = np.fromiter(sorted(found), dtype=np.intp, count=len(found))
        if self.exact and isinstance(value, str):
            query = self.shingles(value)
            similarities = np.array([_jaccard(query, self._shingles[p]) for p in positions])
        else:
            similarities = (self._signatures[positions] == signature).mean(axis=1)
        order = np.argsort(-similarities, kind="stable")
        best = float(similarities[order[0]])
        matches = [Match(self._keys[positions[i]], float(similarities[i]))
                   for i in order[:k] if similarities[i] >= threshold]
        return matches, best

    def query(self, value: TextOrSignature, k: int = 5,
              threshold: float | None = None) -> list[Match]:
        """Up to ``k`` indexed texts similar to ``value`` (≥ ``threshold``), most similar first."""
        return self._matches(value, k, None,
                             self.threshold if threshold is None else threshold)[0]

    def originality(self, value: TextOrSignature, exclude_key: Key | None = None,
                    k: int = 5) -> Originality:
        """How original ``value`` is against the texts indexed before it.

        ``score`` is 1 − the highest similarity of any LSH candidate (1.0 with none);
        ``sources`` are the candidates at or above the threshold. With ``exclude_key`` (the
        text's own key, when it is already indexed) only texts added before it count, so
        an original is not marked down for the copies made of it later.
        """
        before = self._positions.get(exclude_key) if exclude_key is not None else None
        matches, best = self._matches(value, k, before, self.threshold)
        return Originality(score=1.0 - best, sources=matches)


def estimated_similarity(left: Signature, right: Signature) -> float:
    """Estimated Jaccard similarity of two signatures: the share of equal positions."""
    if np.shape(left) != np.shape(right):
        raise ValidationFailed("invalid_signature", "signatures differ in length", "signature")
    return float(np.mean(np.asarray(left) == np.asarray(right)))


def _jaccard(left: npt.NDArray[np.uint32], right: npt.NDArray[np.uint32]) -> float:
    shared = len(np.intersect1d(left, right, assume_unique=True))
    return shared / (len(left) + len(right) - shared)
