"""Adaptation: frozen layers untouched, cache equivalence, provenance, bad requests."""

import pytest
import torch
from phantom import write_phantom_case

from WMHDomainAdaptLib.adaptation import AdaptConfig, adapt, recommended_tune_layers
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.model import Architecture, WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, file_sha256, load_model, save_model
from WMHDomainAdaptLib.network_input import input_channel_names
from WMHDomainAdaptLib.preprocess import PreprocessConfig

CONFIG = AdaptConfig.from_dict(dict(patches_per_case=64, patch_size=32, batch_size=32, epochs=3, patience=3))


@pytest.fixture
def source(tmp_path):
    torch.manual_seed(0)
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source"})
    return save_model(tmp_path / "source.safetensors", network, metadata)


@pytest.fixture
def target_cases(tmp_path):
    return [write_phantom_case(tmp_path / "target", seed, lesion_gain=1.4) for seed in (10, 11)]


def test_adaptation_keeps_frozen_layers_bit_identical_and_changes_tuned_ones(source, target_cases, tmp_path,
                                                                           device):
    result = adapt(source, target_cases, tmp_path / "adapted.safetensors", tune_layers=3,
                   device=device, config=CONFIG)
    parent = load_model(source).network.state_dict()
    adapted = load_model(result.path).network.state_dict()
    for name, value in parent.items():
        layer = int(name.split(".")[1])
        if layer < 12:
            assert torch.equal(value, adapted[name]), name
    assert any(not torch.equal(parent[n], adapted[n]) for n in parent if int(n.split(".")[1]) >= 12)


def test_cached_and_uncached_tail_training_agree(source, target_cases):
    runs = [adapt(source, target_cases, None, tune_layers=4, device="cpu", config=CONFIG, cache=cache)
            for cache in (True, False)]
    cached, uncached = (r.network.state_dict() for r in runs)
    for name in cached:
        assert torch.allclose(cached[name].float(), uncached[name].float(), atol=1e-4), name
    assert runs[0].metadata["training"]["cached_features"] is True
    assert runs[1].metadata["training"]["cached_features"] is False


def test_a_model_with_through_plane_context_adapts_with_the_same_input_channels(tmp_path, target_cases):
    preprocessing = PreprocessConfig(n4=False, context_slices=1)
    network = WMHNet(Architecture(in_channels=len(input_channel_names(preprocessing))))
    source = save_model(tmp_path / "context.safetensors", network,
                        build_metadata(network, preprocessing, 0.5, {"domain": "source"}))
    result = adapt(source, target_cases, tmp_path / "adapted.safetensors", tune_layers=2, device="cpu",
                   config=CONFIG)
    adapted = load_model(result.path)
    assert adapted.metadata["input_channels"] == load_model(source).metadata["input_channels"]
    assert adapted.preprocess_config.context_slices == 1


def test_adapted_model_records_its_provenance(source, target_cases, tmp_path):
    out = tmp_path / "adapted.safetensors"
    adapt(source, target_cases, out, tune_layers=2, device="cpu", config=CONFIG)
    metadata = load_model(out).metadata
    training = metadata["training"]
    assert metadata["parent_sha256"] == file_sha256(source)
    assert training["n_cases"] == 2 and training["case_ids"] == ["phantom010", "phantom011"]
    assert metadata["tune_layers"] == 2 and metadata["frozen_layers"] == 13
    assert "best_val_dice" in training and training["hyperparameters"]["patches_per_case"] == 64


def test_the_source_model_is_never_modified(source, target_cases, tmp_path):
    before = source.read_bytes()
    adapt(source, target_cases, tmp_path / "new.safetensors", tune_layers=1, device="cpu", config=CONFIG)
    assert source.read_bytes() == before


def test_output_equal_to_the_parent_model_is_refused(source, target_cases):
    with pytest.raises(InputError, match="new file"):
        adapt(source, target_cases, source, tune_layers=2, device="cpu", config=CONFIG)


@pytest.mark.parametrize("layers", [0, 16, "seven"])
def test_tuned_layers_outside_one_to_fifteen_are_refused(source, target_cases, tmp_path, layers):
    with pytest.raises(InputError, match="tune-layers"):
        adapt(source, target_cases, tmp_path / "x.safetensors", tune_layers=layers, device="cpu")
    assert not (tmp_path / "x.safetensors").exists()


def test_no_scans_is_refused(source, tmp_path):
    with pytest.raises(InputError, match="at least one"):
        adapt(source, [], tmp_path / "x.safetensors", device="cpu")


def test_scans_whose_labels_are_all_empty_are_refused(source, target_cases, tmp_path):
    import SimpleITK as sitk
    for case in target_cases:
        label = sitk.ReadImage(str(case.label)) * 0
        sitk.WriteImage(label, str(case.label))
    with pytest.raises(InputError, match="empty"):
        adapt(source, target_cases, tmp_path / "x.safetensors", tune_layers=2, device="cpu", config=CONFIG)
    assert not (tmp_path / "x.safetensors").exists()


def test_recommended_layers_grow_with_the_number_of_scans():
    layers = [recommended_tune_layers(n)[0] for n in (1, 2, 5, 10, 40)]
    assert layers == sorted(layers) and layers[0] < layers[-1]
