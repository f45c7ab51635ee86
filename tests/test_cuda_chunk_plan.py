"""The CUDA launcher's chunk planner and launch tables, checked on the CPU.

``_C._cuda_chunk_plan`` exists in every build (CPU-only ones too). It plans
the launches for a list of tensor sizes, packs each launch into the real
kernel-argument table and reads it back with the same lookup the kernel
blocks use, so these tests see what a GPU would be told to do.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fusedoptim import _C

SMALL, LARGE = 4096, 32764  # kernel argument space before / from CUDA 12.1
# Pointer streams: SGD 2-3, Adam 4-5, one more for a param copy (master
# weights), 8-bit state (codes + absmax per moment, and the copy) up to 9.
DEPTHS = (2, 3, 4, 5, 6, 7, 8, 9)


def plan(numels, variants=(), depth=4, param_bytes=LARGE, keyed=False):
    return _C._cuda_chunk_plan(
        list(numels), list(variants), depth=depth, param_bytes=param_bytes, keyed=keyed
    )


def check_plan(numels, variants=(), depth=4, param_bytes=LARGE, keyed=False):
    """Asserts every invariant of a plan; returns it."""
    result = plan(numels, variants, depth, param_bytes, keyed)
    variants = list(variants) or [0] * len(numels)
    chunk = result["chunk_elements"]
    covered = {i: [] for i in range(len(numels))}
    for launch in result["launches"]:
        slots, blocks = launch["slots"], launch["blocks"]
        assert 1 <= len(slots) <= result["max_tensors"]
        assert 1 <= len(blocks) <= result["max_blocks"]
        # Every stream of a slot points at the same tensor.
        tensors = []
        for streams in slots:
            assert len(streams) == depth
            assert len(set(streams)) == 1, streams
            tensors.append(streams[0])
        assert len(set(tensors)) == len(tensors), "a tensor holds two slots of one launch"
        assert tensors == sorted(tensors), "slots follow batch order"
        if keyed:  # each slot carries its own tensor's stochastic-rounding key
            assert launch["keys"] == tensors
        else:
            assert "keys" not in launch
        for t in tensors:
            assert variants[t] == launch["variant"]
            assert numels[t] > 0, "an empty tensor took a slot"
        for tensor, begin, count in blocks:
            assert tensor in tensors
            assert begin % chunk == 0
            assert 0 < count <= chunk
            assert begin + count <= numels[tensor]
            covered[tensor].append((begin, count))
    for i, n in enumerate(numels):
        expected = [(b, min(chunk, n - b)) for b in range(0, n, chunk)]
        assert sorted(covered[i]) == expected, f"tensor {i} is not covered exactly once"
    return result


def launches_of(result):
    return result["launches"]


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("param_bytes", [SMALL, LARGE])
@pytest.mark.parametrize("depth", DEPTHS)
def test_table_fits_the_kernel_argument_space(depth, param_bytes, keyed):
    result = plan([1], depth=depth, param_bytes=param_bytes, keyed=keyed)
    assert result["chunk_elements"] == 65536
    # 256 bytes stay free for the op's scalars.
    assert result["table_bytes"] <= param_bytes - 256
    slot_bytes = depth * 8 + 8 + (4 if keyed else 0)
    table = slot_bytes * result["max_tensors"] + 6 * result["max_blocks"]
    assert table <= result["table_bytes"]
    # Nearly all of the space is used: less than one more slot is left.
    assert param_bytes - 256 - table < slot_bytes + 8 + (0 if keyed else 4)
    assert result["max_tensors"] >= (20 if param_bytes == SMALL else 200)


@pytest.mark.parametrize("depth", [3, 6, 9])
def test_keyed_tables_carry_each_tensors_key(depth):
    numels = [1 + (i * 7919) % 200000 for i in range(700)]
    for param_bytes in (SMALL, LARGE):
        launches = launches_of(check_plan(numels, depth=depth, param_bytes=param_bytes, keyed=True))
        assert len(launches) > 1


def test_empty_batches_launch_nothing():
    assert launches_of(check_plan([])) == []
    assert launches_of(check_plan([0, 0, 0])) == []


def test_empty_tensors_get_no_block():
    result = check_plan([0, 5, 0, 70000, 0])
    (launch,) = launches_of(result)
    assert [s[0] for s in launch["slots"]] == [1, 3]
    assert launch["blocks"] == [(1, 0, 5), (3, 0, 65536), (3, 65536, 70000 - 65536)]


@pytest.mark.parametrize("n", [1, 7, 65535, 65536, 65537, 2 * 65536, 2 * 65536 + 1, 278011])
def test_sizes_straddling_a_chunk(n):
    (launch,) = launches_of(check_plan([n]))
    assert len(launch["blocks"]) == math.ceil(n / 65536)
    assert launch["blocks"][-1][2] == n - (len(launch["blocks"]) - 1) * 65536


@pytest.mark.parametrize("keyed", [False, True])
@pytest.mark.parametrize("param_bytes", [SMALL, LARGE])
@pytest.mark.parametrize("depth", [2, 5, 9])
def test_many_tiny_tensors_fill_launches_by_tensor_count(depth, param_bytes, keyed):
    limits = plan([1], depth=depth, param_bytes=param_bytes, keyed=keyed)
    max_tensors = limits["max_tensors"]
    count = 2 * max_tensors + 3
    numels = [1 + i % 7 for i in range(count)]
    launches = launches_of(check_plan(numels, depth=depth, param_bytes=param_bytes, keyed=keyed))
    assert [len(launch["slots"]) for launch in launches] == [max_tensors, max_tensors, 3]


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_tensor_count_at_the_launch_limit(extra):
    max_tensors = plan([1])["max_tensors"]
    launches = launches_of(check_plan([3] * (max_tensors + extra)))
    assert len(launches) == (2 if extra > 0 else 1)


@pytest.mark.parametrize("param_bytes", [SMALL, LARGE])
@pytest.mark.parametrize("extra_elements", [-1, 0, 1])
def test_one_tensor_at_the_block_limit(param_bytes, extra_elements):
    limits = plan([1], param_bytes=param_bytes)
    n = limits["max_blocks"] * 65536 + extra_elements
    launches = launches_of(check_plan([n], param_bytes=param_bytes))
    assert len(launches) == (2 if extra_elements > 0 else 1)
    if extra_elements > 0:
        assert launches[1]["blocks"] == [(0, limits["max_blocks"] * 65536, 1)]


def test_one_huge_tensor_spans_many_launches():
    n = 2**33 + 12345  # 131073 chunks; only sizes are planned, nothing is allocated
    result = check_plan([n], depth=5)
    launches = launches_of(result)
    assert len(launches) == math.ceil(math.ceil(n / 65536) / result["max_blocks"])
    assert all(len(launch["slots"]) == 1 for launch in launches)


def test_a_tensor_continues_in_the_next_launch_after_a_full_one():
    limits = plan([1])
    big = (limits["max_blocks"] - 2) * 65536 + 5 * 65536  # overflows the first launch by 3 chunks
    first, second = launches_of(check_plan([10, big, 20]))
    assert [s[0] for s in first["slots"]] == [0, 1]
    assert [s[0] for s in second["slots"]] == [1, 2]
    assert second["blocks"][0] == (1, (limits["max_blocks"] - 1) * 65536, 65536)


def test_small_and_huge_tensors_mixed():
    numels = [1, 2**27 + 3, 0, 65537, *([100] * 600), 2**28]
    check_plan(numels, depth=3)
    check_plan(numels, depth=3, param_bytes=SMALL)


def test_each_launch_has_one_variant_in_order_of_first_appearance():
    numels = [10, 20, 30, 40, 50]
    variants = [2, 0, 2, 1, 0]
    launches = launches_of(check_plan(numels, variants))
    assert [launch["variant"] for launch in launches] == [2, 0, 1]
    assert [[s[0] for s in launch["slots"]] for launch in launches] == [[0, 2], [1, 4], [3]]


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="depth"):
        plan([1], depth=10)
    with pytest.raises(ValueError, match="depth"):
        plan([1], depth=1, keyed=True)
    with pytest.raises(ValueError, match="param_bytes"):
        plan([1], param_bytes=1000)
    with pytest.raises(ValueError, match="variant"):
        plan([1, 2], [0])
    with pytest.raises(ValueError, match="too many elements"):
        plan([2**31 * 65536 + 1])


@settings(max_examples=150, deadline=None)
@given(
    numels=st.lists(
        st.one_of(
            st.integers(0, 70),
            st.integers(65530, 65540),
            st.integers(0, 3 * 10**6),
            st.sampled_from([2048 * 65536 - 1, 2048 * 65536 + 1, 320 * 65536 + 7]),
        ),
        max_size=200,
    ),
    depth=st.sampled_from(DEPTHS),
    param_bytes=st.sampled_from([SMALL, LARGE]),
    data=st.data(),
)
def test_random_batches_are_covered_exactly_once(numels, depth, param_bytes, data):
    variants = data.draw(st.lists(st.integers(0, 2), min_size=len(numels), max_size=len(numels)))
    check_plan(numels, variants, depth, param_bytes)
