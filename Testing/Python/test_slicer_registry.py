"""Model registry: listing without torch, validation on registration, never overwriting."""

import datetime as dt

import pytest
import torch
from mrml_testing import MODULE_DIR  # noqa: F401  (puts the module's libraries on sys.path)
from WMHDomainAdaptLogicLib.registry import ModelRegistry, read_header_metadata

from WMHDomainAdaptLib import modelfile
from WMHDomainAdaptLib.model import WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, read_metadata, save_model
from WMHDomainAdaptLib.modelheader import METADATA_KEY
from WMHDomainAdaptLib.preprocess import PreprocessConfig

NOW = dt.datetime(2025, 3, 4, 5, 6, 7)


def make_model(path, training=None, parent_sha256=None):
    torch.manual_seed(0)
    network = WMHNet()
    network.freeze_first(12)
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.4, training or {"domain": "source"},
                              parent_sha256)
    return save_model(path, network, metadata)


@pytest.fixture
def source(tmp_path):
    return make_model(tmp_path / "shipped" / "wmh_source_synthetic.safetensors")


@pytest.fixture
def adapted(tmp_path, source):
    training = {"domain": "target", "n_cases": 4, "best_val_dice": 0.712, "parent": source.name}
    return make_model(tmp_path / "scratch" / "adapted.safetensors", training, modelfile.file_sha256(source))


def test_header_metadata_read_without_torch_equals_the_validated_metadata(source):
    assert METADATA_KEY == modelfile.METADATA_KEY
    assert read_header_metadata(source) == read_metadata(source)


def test_registered_model_moves_into_the_user_folder_and_is_listed_with_provenance(tmp_path, source,
                                                                                   adapted):
    registry = ModelRegistry(tmp_path / "user", [source])
    path = registry.register(adapted, source, now=NOW)

    assert path == tmp_path / "user" / "wmh_source_synthetic_adapted_20250304-050607.safetensors"
    assert not adapted.exists()
    entries, problems = registry.entries()
    assert [e.path for e in entries] == [source, path] and problems == []
    tooltip = entries[1].tooltip
    for expected in ("Parent: wmh_source_synthetic.safetensors", "(N): 4", "Tuned layers: 3 of 15",
                     "Validation Dice: 0.712", "Created: 20"):
        assert expected in tooltip
    assert entries[1].label == "wmh_source_synthetic_adapted_20250304-050607 (N=4, K=3, Dice 0.71)"


def test_registering_twice_in_the_same_second_never_overwrites(tmp_path, source, adapted):
    registry = ModelRegistry(tmp_path / "user", [source])
    first = registry.register(adapted, source, now=NOW)
    second_file = make_model(tmp_path / "scratch" / "again.safetensors", {"n_cases": 1})
    second = registry.register(second_file, first, now=NOW)
    assert second.name == "wmh_source_synthetic_adapted_20250304-050607_2.safetensors"
    assert read_metadata(first)["training"]["n_cases"] == 4


def test_tampered_model_is_not_registered(tmp_path, source, adapted):
    data = bytearray(adapted.read_bytes())
    data[-5] ^= 0xFF  # a weight byte
    adapted.write_bytes(bytes(data))
    registry = ModelRegistry(tmp_path / "user", [source])
    with pytest.raises(ValueError, match="altered"):
        registry.register(adapted, source)
    assert [e.path for e in registry.entries()[0]] == [source]
    assert not list((tmp_path / "user").glob("*"))


def test_unreadable_file_in_the_user_folder_is_reported_not_listed(tmp_path, source):
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "broken.safetensors").write_bytes(b"\x10\x00")
    entries, problems = ModelRegistry(tmp_path / "user", [source]).entries()
    assert [e.path for e in entries] == [source]
    assert len(problems) == 1 and "broken.safetensors: not a WMHDomainAdapt model file" in problems[0]
