"""Training samples: addressed by number (deterministic), shuffled per epoch, disjoint across ranks; path errors."""
import numpy as np
import pytest

from bgmatting.config import TRAIN_DEFAULTS, load_config
from bgmatting.data.datasets import MattingSamples, SampleRange
from bgmatting.data.layouts import background_paths, fgr_pha_items
from bgmatting.data.synthetic import make_backgrounds, make_fgr_pha_dataset
from bgmatting.errors import UserError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    make_fgr_pha_dataset(root / "vm", n=5, size=40, seed=0, n_valid=3)
    make_backgrounds(root / "bg", n=3, size=40, seed=0)
    return root


def _samples(root, train=True, seed=0):
    split = "train" if train else "valid"
    return MattingSamples(fgr_pha_items(root / "vm" / split), background_paths(root / "bg"),
                          TRAIN_DEFAULTS["augment"], 32, seed=seed, train=train, valid_samples=2)


def test_samples_are_deterministic_by_number_and_seed(root):
    a, b, other = _samples(root), _samples(root), _samples(root, seed=1)
    for x, y in zip(a.sample(7), b.sample(7)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.sample(7)[1], a.sample(8)[1])
    assert not np.array_equal(a.sample(7)[1], other.sample(7)[1])
    pha, fgr, bgr = a.sample(3)
    assert pha.shape == (32, 32, 1) and fgr.shape == bgr.shape == (32, 32, 3)
    assert all(x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1 for x in (pha, fgr, bgr))


def test_each_epoch_visits_every_foreground_once_in_a_new_order(root):
    samples = _samples(root)
    epochs = [[samples._indices(e * 5 + k)[0] for k in range(5)] for e in range(2)]
    assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(5))
    assert epochs[0] != epochs[1]


def test_ranks_read_disjoint_samples_and_resume_reads_the_same(root):
    samples = _samples(root)

    class Recorder:
        def sample(self, number):
            return number

    rank0 = SampleRange(Recorder(), 0, 3, 2, rank=0, world=2)
    rank1 = SampleRange(Recorder(), 0, 3, 2, rank=1, world=2)
    numbers0, numbers1 = [rank0[k] for k in range(6)], [rank1[k] for k in range(6)]
    assert not set(numbers0) & set(numbers1) and sorted(numbers0 + numbers1) == list(range(12))
    resumed = SampleRange(Recorder(), 2, 3, 2, rank=0, world=2)
    assert [resumed[k] for k in range(len(resumed))] == numbers0[4:]
    assert len(SampleRange(samples, 0, 3, 2)) == 6


def test_validation_samples_are_fixed_and_evenly_spaced(root):
    valid = _samples(root, train=False)
    assert len(valid) == 2 and [valid._indices(i)[0] for i in range(2)] == [0, 1]
    np.testing.assert_array_equal(valid.sample(1)[0], _samples(root, train=False).sample(1)[0])


def test_missing_paths_name_the_key_path_and_layout(root, tmp_path):
    cfg = load_config(None, [f"data.train.root={root}/vm/train", f"data.train.backgrounds={tmp_path}/none"])
    with pytest.raises(UserError, match=rf"config key data.train.backgrounds: folder not found: {tmp_path}/none; "
                                        r"expected a folder of background images"):
        MattingSamples.from_config(cfg, "train")
    with pytest.raises(UserError, match=r"config key data.valid.root is not set; expected ROOT/fgr/"):
        MattingSamples.from_config(cfg, "valid")
