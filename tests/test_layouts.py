"""Public dataset layouts: pairing by relative path, PhotoMatte85 forms, Composition-1k, trimap checks, errors."""
import numpy as np
import pytest

from bgmatting.data import layouts
from bgmatting.data.io import write_image
from bgmatting.data.synthetic import make_comp1k, make_fgr_pha_dataset, make_photomatte85
from bgmatting.errors import UserError


def _grey(value, size=(6, 5)):
    return np.full(size, value, np.uint8)


def test_fgr_pha_pairs_nested_folders_by_relative_path(tmp_path):
    make_fgr_pha_dataset(tmp_path, n=5, size=16, seed=0, clip_length=2)
    items = layouts.fgr_pha_items(tmp_path / "train")
    assert [item["name"] for item in items] == [f"clip{i // 2:04d}/{i:04d}" for i in range(5)]
    for item in items:
        train = tmp_path / "train"
        assert item["fgr"].relative_to(train / "fgr") == item["pha"].relative_to(train / "pha")
    fgr, pha = layouts.load_foreground(items[0])
    assert fgr.shape == (16, 16, 3) and pha.shape == (16, 16)
    assert fgr.dtype == pha.dtype == np.float32 and 0 <= pha.min() and pha.max() <= 1


def test_pairing_ignores_extensions(tmp_path):
    write_image(tmp_path / "fgr" / "a.jpg", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "pha" / "a.png", _grey(9, (4, 4)))
    items = layouts.fgr_pha_items(tmp_path)
    assert items == [{"name": "a", "fgr": tmp_path / "fgr" / "a.jpg", "pha": tmp_path / "pha" / "a.png"}]


def test_photomatte85_rgba_folder_reads_alpha_channel(tmp_path):
    make_photomatte85(tmp_path, n=3, size=20, seed=1)
    items = layouts.photomatte85_items(tmp_path)
    assert [item["name"] for item in items] == ["0000", "0001", "0002"]
    fgr, pha = layouts.load_foreground(items[1])
    assert fgr.shape == (20, 20, 3) and pha.shape == (20, 20)
    assert pha.min() == 0 and 0 < pha.max() <= 1  # a real matte, not the opaque default


def test_photomatte85_split_form(tmp_path):
    write_image(tmp_path / "fgr" / "x.png", np.full((4, 6, 3), 200, np.uint8))
    write_image(tmp_path / "pha" / "x.png", _grey(51, (4, 6)))
    (item,) = layouts.photomatte85_items(tmp_path)
    fgr, pha = layouts.load_foreground(item)
    assert np.allclose(pha, 0.2) and np.allclose(fgr, 200 / 255)


def test_photomatte85_rgb_without_alpha_is_rejected(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (item,) = layouts.photomatte85_items(tmp_path)
    with pytest.raises(UserError, match=r"no alpha in .*a\.png"):
        layouts.load_foreground(item)


def test_fgr_pha_size_mismatch_is_rejected(tmp_path):
    write_image(tmp_path / "fgr" / "a.png", np.zeros((4, 4, 3), np.uint8))
    write_image(tmp_path / "pha" / "a.png", _grey(9, (5, 4)))
    (item,) = layouts.fgr_pha_items(tmp_path)
    with pytest.raises(UserError, match="size mismatch"):
        layouts.load_foreground(item)


def test_comp1k_layout_with_foregrounds(tmp_path):
    make_comp1k(tmp_path, n=2, size=24, seed=0, backgrounds_per_fg=2)
    items = layouts.comp1k_items(tmp_path)
    assert [item["name"] for item in items] == ["fg0_bg0", "fg0_bg1", "fg1_bg2", "fg1_bg3"]
    assert items[2]["fg"] == tmp_path / "fg" / "fg1.png"
    assert items[0]["alpha"] == tmp_path / "alpha_copy" / "fg0_bg0.png"
    assert set(np.unique(layouts.load_trimap(items[0]["trimap"]))) <= {0, 128, 255}


def test_empty_folder_is_rejected(tmp_path):
    (tmp_path / "fgr").mkdir()
    write_image(tmp_path / "pha" / "a.png", _grey(1))
    with pytest.raises(UserError, match="no images found in folder: .*fgr"):
        layouts.fgr_pha_items(tmp_path)


def test_missing_subfolder_is_named(tmp_path):
    (tmp_path / "merged").mkdir()
    with pytest.raises(UserError, match="alpha_copy folder not found"):
        layouts.comp1k_items(tmp_path)


def test_count_mismatch_names_the_extra_file(tmp_path):
    for name in ("a", "b"):
        write_image(tmp_path / "pred" / f"{name}.png", _grey(1))
    write_image(tmp_path / "gt" / "a.png", _grey(1))
    with pytest.raises(UserError, match=r"count mismatch: 2 images in .*pred but 1 in .*gt; e\.g\. 'b' is in pred/"):
        layouts.prediction_items(tmp_path / "pred", tmp_path / "gt")


def test_unpaired_names_are_named(tmp_path):
    write_image(tmp_path / "pred" / "a.png", _grey(1))
    write_image(tmp_path / "gt" / "b.png", _grey(1))
    with pytest.raises(UserError, match=r"unpaired names: 'a' is in pred/ .* but not in gt/"):
        layouts.prediction_items(tmp_path / "pred", tmp_path / "gt")


def test_duplicate_names_in_one_folder_are_rejected(tmp_path):
    write_image(tmp_path / "gt" / "a.png", _grey(1))
    write_image(tmp_path / "gt" / "a.jpg", _grey(1))
    write_image(tmp_path / "pred" / "a.png", _grey(1))
    with pytest.raises(UserError, match="two images share the name 'a'"):
        layouts.prediction_items(tmp_path / "pred", tmp_path / "gt")


def test_trimap_with_other_values_is_rejected_or_quantised(tmp_path):
    trimap = np.array([[0, 20, 128, 140, 170, 255]], np.uint8)
    write_image(tmp_path / "t.png", trimap)
    expected = r"values other than 0/128/255 \(3 others, e\.g\. 20, 140, 170\).*--trimap-threshold"
    with pytest.raises(UserError, match=expected):
        layouts.load_trimap(tmp_path / "t.png")
    quantised = layouts.load_trimap(tmp_path / "t.png", threshold=85)
    assert quantised.tolist() == [[0, 0, 128, 128, 255, 255]]
    with pytest.raises(UserError, match="1..127"):
        layouts.load_trimap(tmp_path / "t.png", threshold=200)


def test_unreadable_file_is_named(tmp_path):
    (tmp_path / "t.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match=r"cannot read image .*t\.png"):
        layouts.load_trimap(tmp_path / "t.png")


def test_a_validation_split_may_be_named_valid_or_test(tmp_path):
    assert layouts.split_folders(tmp_path / "vm" / "test") == [tmp_path / "vm" / "test", tmp_path / "vm" / "valid"]
    assert layouts.split_folders(tmp_path / "vm" / "valid") == [tmp_path / "vm" / "valid", tmp_path / "vm" / "test"]
    assert layouts.split_folders(tmp_path / "vm" / "heldout") == [tmp_path / "vm" / "heldout"]
    make_fgr_pha_dataset(tmp_path, n=2, size=16, seed=0, n_valid=2, valid_name="test")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test", "train"]
    assert len(layouts.fgr_pha_items(tmp_path / "test")) == 2
