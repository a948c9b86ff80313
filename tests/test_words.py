"""Unaligned loads read exactly the bytes asked for; a string's last word stands for its bytes."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.words import last_word, load_half, load_word, mix_bytes, same_bytes


@nb.njit(cache=False)
def _words(data, index):
    return load_word(data, index), load_half(data, index)


@nb.njit(cache=False)
def _last(data, s, e):
    return last_word(data, s, e)


@settings(max_examples=200, deadline=None)
@given(data=st.binary(min_size=8, max_size=64), at=st.integers(0, 56))
def test_a_load_reads_the_bytes_at_any_offset(data, at):
    at = min(at, len(data) - 8)
    arr = np.frombuffer(data, dtype=np.uint8)
    word, half = _words(arr, at)
    assert word == int(np.frombuffer(data[at : at + 8], dtype=np.uint64)[0])
    assert half == int(np.frombuffer(data[at : at + 4], dtype=np.uint32)[0])


def _reference_last(b: bytes) -> int:
    """``last_word`` spelled out, little-endian as the machines we run on."""
    n = len(b)
    if n >= 8:
        return int.from_bytes(b[-8:], "little")
    if n >= 4:
        return int.from_bytes(b[:4], "little") | int.from_bytes(b[-4:], "little") << 32
    if n:
        return b[0] | b[n >> 1] << 8 | b[-1] << 16
    return 0


@settings(max_examples=300, deadline=None)
@given(prefix=st.binary(max_size=9), body=st.binary(max_size=20), suffix=st.binary(max_size=9))
def test_the_last_word_of_a_string_is_its_tail_wherever_it_lies(prefix, body, suffix):
    arr = np.frombuffer(prefix + body + suffix, dtype=np.uint8)
    s = len(prefix)
    assert _last(arr, s, s + len(body)) == _reference_last(body)


@settings(max_examples=300, deadline=None)
@given(a=st.binary(max_size=8), b=st.binary(max_size=8))
def test_strings_of_up_to_eight_bytes_and_equal_length_have_equal_last_words_only_if_equal(a, b):
    if len(a) != len(b):
        b = (b + a)[: len(a)]
    wa = _last(np.frombuffer(a, dtype=np.uint8), 0, len(a))
    wb = _last(np.frombuffer(b, dtype=np.uint8), 0, len(b))
    assert (wa == wb) == (a == b)


def test_only_contiguous_byte_arrays_are_accepted():
    with pytest.raises(nb.core.errors.TypingError):
        _words(np.zeros(32, dtype=np.uint8)[::2], 0)
    with pytest.raises(nb.core.errors.TypingError):
        _words(np.zeros(4, dtype=np.int64), 0)


@nb.njit(cache=False)
def _same(a, i, b, j, n):
    return same_bytes(a, i, b, j, n)


@nb.njit(cache=False)
def _mix(data, s, e):
    return mix_bytes(np.uint64(7), data, s, e)


@settings(max_examples=300, deadline=None)
@given(a=st.binary(max_size=40), b=st.binary(max_size=40), pad=st.integers(0, 9))
def test_same_bytes_and_the_hash_follow_the_bytes(a, b, pad):
    """Equal strings anywhere in their arrays: equal, and the same hash; a string and its
    one-byte-shorter prefix hash differently (the length is mixed in)."""
    if len(b) > len(a):
        a, b = b, a
    b = (b + a)[: len(a)]
    left = np.frombuffer(a, dtype=np.uint8)
    right = np.frombuffer(bytes(pad) + b, dtype=np.uint8)
    assert _same(left, 0, right, pad, len(a)) == (a == b)
    if a == b:
        assert _mix(left, 0, len(a)) == _mix(right, pad, pad + len(b))
    if a:
        assert _mix(left, 0, len(a)) != _mix(left, 0, len(a) - 1)
