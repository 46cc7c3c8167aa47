"""The sieve in front of the ledger: never a false no, rarely a false maybe."""

from __future__ import annotations

import hashlib

import pytest

from geoingest.sieve import Sieve, digest


def _sha(n: int) -> bytes:
    return hashlib.sha256(b"%d" % n).digest()


def test_every_key_added_is_found() -> None:
    sieve = Sieve(bits=1 << 16)
    keys = [_sha(n) for n in range(2000)] + [digest(b"drop\0a/%d.geojson" % n) for n in range(2000)]
    for key in keys:
        sieve.add(key)
    assert all(key in sieve for key in keys)


def test_keys_never_added_are_almost_never_found() -> None:
    sieve = Sieve(bits=1 << 20)
    for n in range(10_000):
        sieve.add(_sha(n))
    strangers = sum(_sha(n) in sieve for n in range(10_000, 110_000))
    # Three probes into 2**20 bits holding 10,000 keys: about 2 in 10,000 by chance.
    assert strangers < 100


def test_an_empty_sieve_finds_nothing() -> None:
    assert not any(_sha(n) in Sieve(bits=1 << 10) for n in range(1000))


@pytest.mark.parametrize("bits", [0, 4, 1000, 1 << 33])
def test_a_size_that_is_not_a_usable_power_of_two_is_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="power of two"):
        Sieve(bits=bits)


def test_a_digest_too_short_to_probe_is_refused() -> None:
    with pytest.raises(ValueError, match="too short"):
        Sieve(bits=1 << 10).add(b"short")
