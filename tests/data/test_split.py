"""Stratified held-out splits: class shares, partition, determinism."""

import numpy as np

from numpynet.data.split import stratified_split


def test_stratified_split_keeps_class_shares_and_partitions_the_set():
    labels = np.repeat(np.arange(5), [100, 200, 50, 10, 40])
    train, val = stratified_split(labels, 0.1, np.random.default_rng(0))
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(labels.size))
    assert np.bincount(labels[val]).tolist() == [10, 20, 5, 1, 4]
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)


def test_stratified_split_is_deterministic_per_seed():
    labels = np.random.default_rng(1).integers(0, 10, size=1000)
    first = stratified_split(labels, 0.2, np.random.default_rng(7))
    again = stratified_split(labels, 0.2, np.random.default_rng(7))
    other = stratified_split(labels, 0.2, np.random.default_rng(8))
    assert np.array_equal(first[1], again[1])
    assert not np.array_equal(first[1], other[1])


def test_every_class_keeps_a_training_sample():
    labels = np.array([0, 0, 1, 1, 2])
    train, val = stratified_split(labels, 0.9, np.random.default_rng(0))
    assert set(labels[train]) == {0, 1, 2}


def test_a_class_of_two_or_more_always_holds_one_out():
    labels = np.repeat([0, 1, 2], [2, 50, 1])
    kept, held_out = stratified_split(labels, 0.01, np.random.default_rng(0))
    # round(0.01 * 2) and round(0.01 * 50) are 0, yet a class of two spares one; a class of one not.
    assert np.bincount(labels[held_out], minlength=3).tolist() == [1, 1, 0]
    assert kept.size + held_out.size == labels.size
