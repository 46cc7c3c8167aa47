"""A Bloom filter that lets the ledger answer "never seen" without a query.

Almost every file geoingest reads is new, so almost every look-up in the
ledger answers no. Yet a query on the ledger's read connection costs
milliseconds while batches are being committed: every write invalidates the
reader's page cache, and the pages come back through the write-ahead log. A
:class:`Sieve` answers those look-ups in memory, for certain when the answer
is no, and leaves the rare "maybe" to the ledger.

Its size is fixed: 2**24 bits (2 MiB) and 3 probes keep false positives under
1 % up to about 1.3 million keys, and near one in 200,000 at 100,000 keys.
Past that a sieve only lets more look-ups through to the ledger; it never
gives a wrong answer.
"""

from __future__ import annotations

import hashlib

SIEVE_BITS = 1 << 24
DIGEST_BYTES = 12  # three probes of 32 bits each


def digest(data: bytes) -> bytes:
    """Return the digest a :class:`Sieve` takes for a key that is not a hash already.

    Example:
        >>> len(digest(b"drop/a.geojson"))
        12
    """
    return hashlib.blake2b(data, digest_size=DIGEST_BYTES).digest()


class Sieve:
    """A fixed-size Bloom filter over digests of at least 12 bytes.

    The digests must be uniformly distributed, as a sha256 or :func:`digest` is:
    each of the three probes is four bytes of it.

    Args:
        bits: The number of bits, a power of two.

    Example:
        >>> sieve = Sieve(bits=1024)
        >>> sieve.add(digest(b"a"))
        >>> digest(b"a") in sieve, digest(b"b") in sieve
        (True, False)
    """

    def __init__(self, bits: int = SIEVE_BITS) -> None:
        if not 8 <= bits <= 1 << 32 or bits & (bits - 1):
            raise ValueError(f"bits must be a power of two from 8 to 2**32, not {bits}")
        self._bits = bytearray(bits // 8)
        self._mask = bits - 1

    def add(self, key: bytes) -> None:
        """Add a digest."""
        bits = self._bits
        for position in self._positions(key):
            bits[position >> 3] |= 1 << (position & 7)

    def __contains__(self, key: bytes) -> bool:
        """Say whether a digest may have been added; False is certain."""
        bits = self._bits
        a, b, c = self._positions(key)
        return bool(bits[a >> 3] >> (a & 7) & bits[b >> 3] >> (b & 7) & bits[c >> 3] >> (c & 7) & 1)

    def _positions(self, key: bytes) -> tuple[int, int, int]:
        # One conversion for all three probes: each is 32 bits of the digest.
        if len(key) < DIGEST_BYTES:
            raise ValueError(f"a digest of {len(key)} bytes is too short for the sieve")
        number, mask = int.from_bytes(key[:DIGEST_BYTES], "little"), self._mask
        return number & mask, (number >> 32) & mask, (number >> 64) & mask
