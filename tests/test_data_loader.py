"""BatchIterator: each example once per epoch, seeded order, exact resume from a JSON state."""
import json

import numpy as np
import pytest

from minivae.data import BatchIterator, DataError, Dataset


def _ids(n):
    """Data whose rows name themselves, so a batch tells which examples it holds."""
    return np.arange(n)


def _take(it, count):
    return [it.next_batch().copy() for _ in range(count)]


def test_every_example_exactly_once_per_epoch():
    it = BatchIterator(_ids(103), batch_size=10, seed=3)
    assert len(it) == 11
    for epoch in range(3):
        batches = list(it)
        assert [len(b) for b in batches] == [10] * 10 + [3]
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(103))
        assert it.epoch == epoch + 1 and it.position == 0


def test_drop_last_gives_full_batches_without_repeats():
    it = BatchIterator(_ids(103), batch_size=10, seed=3, drop_last=True)
    batches = list(it)
    assert len(it) == 10 and [len(b) for b in batches] == [10] * 10
    seen = np.concatenate(batches)
    assert len(np.unique(seen)) == 100
    with pytest.raises(ValueError, match="no batch"):
        BatchIterator(_ids(5), batch_size=10, drop_last=True)


def test_order_is_seeded_and_changes_with_epoch_and_seed():
    first = np.concatenate(list(BatchIterator(_ids(50), 7, seed=11)))
    again = np.concatenate(list(BatchIterator(_ids(50), 7, seed=11)))
    other = np.concatenate(list(BatchIterator(_ids(50), 7, seed=12)))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    it = BatchIterator(_ids(50), 7, seed=11)
    e0, e1 = np.concatenate(list(it)), np.concatenate(list(it))
    assert not np.array_equal(e0, e1)
    # the order is numpy's permutation under default_rng([seed, epoch]), nothing hidden
    assert np.array_equal(e1, np.random.default_rng([11, 1]).permutation(50))
    assert np.array_equal(np.concatenate(list(BatchIterator(_ids(50), 7, shuffle=False))), np.arange(50))


@pytest.mark.parametrize("stop_after", [0, 4, 11, 15, 22, 30])      # mid-epoch and at epoch ends
def test_resume_from_json_state_equals_straight_through(stop_after):
    straight = _take(BatchIterator(_ids(103), 10, seed=5), 35)
    first = BatchIterator(_ids(103), 10, seed=5)
    head = _take(first, stop_after)
    state = json.loads(json.dumps(first.state_dict()))
    np.random.default_rng(99).random(1000)           # unrelated draws must not matter
    np.random.seed(1)
    resumed = BatchIterator(_ids(103), 10, seed=123)  # the saved seed wins
    resumed.load_state_dict(state)
    tail = _take(resumed, 35 - stop_after)
    assert all(np.array_equal(a, b) for a, b in zip(straight, head + tail))
    assert resumed.state_dict()["epoch"] == 35 // 11


def test_resume_mid_epoch_with_for_loop_finishes_that_epoch():
    it = BatchIterator(_ids(30), 4, seed=0)
    full = list(BatchIterator(_ids(30), 4, seed=0))
    for i, _ in enumerate(it):
        if i == 2:
            break
    rest = BatchIterator(_ids(30), 4, seed=0)
    rest.load_state_dict(it.state_dict())
    assert all(np.array_equal(a, b) for a, b in zip(full[3:], list(rest)))
    assert rest.epoch == 1


def test_dataset_batches_and_indices():
    images = np.random.default_rng(0).random((20, 1, 4, 4), dtype=np.float32)
    data = Dataset(images, labels=np.arange(20) % 3)
    it = BatchIterator(data, 8, seed=1, return_indices=True)
    for batch, idx in it:
        assert batch.dtype == np.float32 and batch.shape[1:] == (1, 4, 4)
        assert np.array_equal(batch, images[idx])


def test_mismatched_or_corrupt_state_is_refused():
    it = BatchIterator(_ids(40), 8, seed=0)
    state = it.state_dict()
    with pytest.raises(DataError, match="batch_size=8.*batch_size=16"):
        BatchIterator(_ids(40), 16).load_state_dict(state)
    with pytest.raises(DataError, match="n=40.*n=41"):
        BatchIterator(_ids(41), 8).load_state_dict(state)
    with pytest.raises(DataError, match="corrupt"):
        it.load_state_dict({**state, "position": 40})
    with pytest.raises(DataError, match="not a BatchIterator state"):
        it.load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        BatchIterator(_ids(40), 0)
    with pytest.raises(ValueError, match="seed must be a non-negative integer"):
        BatchIterator(_ids(40), 8, seed=-1)
