"""Unaligned loads read exactly the bytes asked for; a string's last word stands for its bytes."""

from __future__ import annotations

import numba as nb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tsdb_arrow.words import last_word, load_half, load_word


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
