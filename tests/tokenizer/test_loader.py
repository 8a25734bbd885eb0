"""The batch loader: shifted targets, determinism from (seed, step), disjoint ranks, device errors."""

import numpy as np
import pytest
import torch

from llm_from_scratch.tokenizer.loader import epoch_window_starts, get_batch, window_starts
from llm_from_scratch.tokenizer.shards import write_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory, small_bpe, plays):
    root = tmp_path_factory.mktemp("loader")
    docs = [p[i : i + 30_000] for p in plays for i in range(0, len(p), 30_000)]
    return write_shards(docs, small_bpe, small_bpe.save(root / "t.json"), root, 20_000, 0.1, 1, progress=False)


def test_targets_are_inputs_shifted_by_one(shards):
    x, y = get_batch(shards, "train", batch_size=8, context_length=32, seed=0, step=3)
    assert x.shape == y.shape == (8, 32) and x.dtype == y.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])


def test_windows_come_from_the_shards(shards):
    x, y = get_batch(shards, "val", batch_size=4, context_length=16, seed=1, step=0)
    stream = np.concatenate([np.asarray(t) for t in shards.tokens("val")]).tolist()
    text = " ".join(map(str, stream))
    for row in torch.cat([x, y[:, -1:]], dim=1).tolist():
        assert " ".join(map(str, row)) in text


def test_deterministic_from_seed_and_step(shards):
    a = get_batch(shards, "train", 4, 16, seed=7, step=100)
    b = get_batch(shards, "train", 4, 16, seed=7, step=100)  # e.g. after resuming at step 100
    c = get_batch(shards, "train", 4, 16, seed=7, step=101)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])


def test_ranks_never_share_a_window_and_cover_the_global_batch(shards):
    world = 4
    per_rank = [get_batch(shards, "train", 8, 16, seed=3, step=5, rank=r, world_size=world)[0] for r in range(world)]
    rows = {tuple(r) for x in per_rank for r in x.tolist()}
    assert len(rows) == world * 8
    shard, offset = window_starts([len(t) for t in shards.tokens("train")], world * 8, 16, seed=3, step=5)
    assert len(set(zip(shard.tolist(), offset.tolist(), strict=True))) == world * 8
    single = get_batch(shards, "train", world * 8, 16, seed=3, step=5)[0]
    assert torch.equal(torch.cat(per_rank), single)


def test_windows_stay_inside_a_shard():
    shard, offset = window_starts([10, 5, 40], n=40, context_length=4, seed=0, step=0)
    lengths = np.array([10, 5, 40])
    assert (offset + 5 <= lengths[shard]).all() and len(set(zip(shard, offset, strict=True))) == 40


def test_impossible_requests_are_clear_errors(shards):
    with pytest.raises(ValueError, match="cannot draw"):
        get_batch(shards, "val", batch_size=10**7, context_length=16, seed=0, step=0)
    with pytest.raises(ValueError, match="rank 4 is outside"):
        get_batch(shards, "train", 2, 16, seed=0, step=0, rank=4, world_size=4)
    with pytest.raises(ValueError, match="split must be"):
        get_batch(shards, "test", 2, 16, seed=0, step=0)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="'cuda' was requested but is not available"):
            get_batch(shards, "train", 2, 16, seed=0, step=0, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_batches_match_cpu(shards):
    cpu = get_batch(shards, "train", 4, 16, seed=2, step=9)
    gpu = get_batch(shards, "train", 4, 16, seed=2, step=9, device="cuda")
    assert gpu[0].is_cuda and torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])


def _covered(lengths, starts, context_length):
    """Per shard, how many times each token position falls inside a drawn window's inputs."""
    seen = [np.zeros(n, dtype=np.int64) for n in lengths]
    for shard, offset in starts:
        seen[shard][offset : offset + context_length] += 1
    return np.concatenate(seen)


def test_an_epoch_covers_every_token_once_where_random_windows_miss_a_quarter():
    lengths, ctx, batch = [5_000, 3_001, 7_777], 16, 8
    per_epoch = sum(n // ctx - 1 for n in lengths)
    steps = int(1.4 * per_epoch / batch)  # 1.4 epochs' worth of windows, the book run's ratio
    draws = {}
    for order, sample in (("random", window_starts), ("epochs", epoch_window_starts)):
        pairs = []
        for step in range(steps):
            shard, offset = sample(lengths, batch, ctx, seed=0, step=step)
            assert (offset + ctx + 1 <= np.array(lengths)[shard]).all()  # windows stay inside their shard
            pairs += list(zip(shard.tolist(), offset.tolist(), strict=True))
        draws[order] = pairs
    first_epoch = draws["epochs"][: per_epoch // batch * batch]
    assert len(set(first_epoch)) == len(first_epoch)  # no window twice within an epoch
    once = _covered(lengths, first_epoch, ctx)
    assert once.max() == 1 and once.mean() > 0.95  # non-overlapping, and all but the shards' ends
    unseen = {order: (_covered(lengths, pairs, ctx) == 0).mean() for order, pairs in draws.items()}
    assert unseen["epochs"] < 0.01 and 0.18 < unseen["random"] < 0.32  # exp(-1.4) = 0.25


def test_epoch_order_is_a_function_of_seed_and_step_and_splits_across_ranks(shards):
    a = get_batch(shards, "train", 4, 16, seed=7, step=100, order="epochs")
    b = get_batch(shards, "train", 4, 16, seed=7, step=100, order="epochs")
    c = get_batch(shards, "train", 4, 16, seed=8, step=100, order="epochs")
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0]) and torch.equal(a[0][:, 1:], a[1][:, :-1])
    per_rank = [get_batch(shards, "train", 8, 16, 3, 5, rank=r, world_size=4, order="epochs")[0] for r in range(4)]
    assert torch.equal(torch.cat(per_rank), get_batch(shards, "train", 32, 16, 3, 5, order="epochs")[0])
    with pytest.raises(ValueError, match="order must be one of"):
        get_batch(shards, "train", 2, 16, seed=0, step=0, order="shuffled")
    with pytest.raises(ValueError, match="non-overlapping windows"):
        epoch_window_starts([40, 30], n=10, context_length=8, seed=0, step=0)


def test_a_batch_that_straddles_two_epochs_takes_the_end_of_one_and_the_start_of_the_next():
    lengths, ctx = [200, 130], 10
    per_epoch = sum(n // ctx - 1 for n in lengths)  # 31: a batch of 4 straddles epochs 0 and 1 at step 7
    flat = [epoch_window_starts(lengths, 4, ctx, seed=1, step=s) for s in range((2 * per_epoch + 3) // 4)]
    pairs = [p for shard, offset in flat for p in zip(shard.tolist(), offset.tolist(), strict=True)]
    for epoch in (0, 1):  # each epoch whole: every one of its windows exactly once, in whichever steps it falls
        assert len(set(pairs[epoch * per_epoch : (epoch + 1) * per_epoch])) == per_epoch
