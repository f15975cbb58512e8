"""Model files: bit-exact round trip, metadata, and clear errors for bad files."""

import json
import struct

import pytest
import torch

from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.model import Architecture, WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, load_model, read_metadata, save_model
from WMHDomainAdaptLib.modelheader import check_weights, metadata_sha256
from WMHDomainAdaptLib.preprocess import PreprocessConfig


@pytest.fixture
def saved(tmp_path):
    torch.manual_seed(1)
    network = WMHNet()
    network.freeze_first(12)
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.35, {"domain": "source", "n_cases": 3})
    return save_model(tmp_path / "model.safetensors", network, metadata), network


def test_save_and_load_round_trip_is_bit_exact(saved):
    path, network = saved
    loaded = load_model(path)
    assert list(network.state_dict()) == list(loaded.network.state_dict())
    for (name, value), (_, other) in zip(network.state_dict().items(),
                                         loaded.network.state_dict().items()):
        assert torch.equal(value, other), name
    assert loaded.threshold == 0.35
    assert loaded.preprocess_config == PreprocessConfig(n4=False)
    assert loaded.network.frozen_layers == 12


def test_a_model_written_before_an_option_existed_is_preprocessed_as_it_was_trained(tmp_path):
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(), 0.5, {"domain": "source"})
    del metadata["preprocessing"]["n4_convergence"]  # as the first model files were written
    path = save_model(tmp_path / "first_format.safetensors", network, metadata)
    assert load_model(path).preprocess_config.n4_convergence == 1e-3  # ITK's default, used then
    assert PreprocessConfig().n4_convergence == 1e-4  # what new models use


def test_metadata_records_architecture_channels_and_provenance(saved):
    metadata = read_metadata(saved[0])
    assert metadata["input_channels"] == ["t1", "flair"]
    assert len(metadata["layer_table"]) == 15
    assert metadata["frozen_layers"] == 12 and metadata["tune_layers"] == 3
    assert {"library_version", "created", "parent_sha256", "training", "format_version"} <= set(metadata)
    assert metadata["parent_sha256"] is None  # from scratch (adapted: test_adaptation)


def test_existing_model_is_never_overwritten_unless_asked(saved):
    path, network = saved
    before = path.read_bytes()
    with pytest.raises(InputError, match="already exists"):
        save_model(path, WMHNet(), read_metadata(path))
    assert path.read_bytes() == before


def test_missing_model_file_is_reported(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "absent.safetensors")


def test_truncated_model_file_is_reported(saved, tmp_path):
    broken = tmp_path / "truncated.safetensors"
    broken.write_bytes(saved[0].read_bytes()[:-500])
    with pytest.raises(InputError, match="corrupt or truncated"):
        load_model(broken)


def test_garbage_model_file_is_reported(tmp_path):
    broken = tmp_path / "garbage.safetensors"
    broken.write_bytes(b"this is not a model" * 20)
    with pytest.raises(InputError, match="truncated"):
        load_model(broken)


def _rewrite_header(path, change):
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    change(header)
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size:])


def _weights_edit(path, offset: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF  # flip bits inside the last tensor
    return bytes(data)


@pytest.mark.parametrize("side", ["above", "below"])
def test_weights_altered_after_saving_are_detected(saved, tmp_path, side):
    """Edits whose weights hash sorts above and below the recorded one: a check that were not
    equality would let one of the two through."""
    from safetensors import safe_open

    from WMHDomainAdaptLib.modelfile import weights_sha256
    path = saved[0]
    recorded = read_metadata(path)["weights_sha256"]
    for offset in range(-3, -200, -4):
        edited = tmp_path / f"edited{offset}.safetensors"
        edited.write_bytes(_weights_edit(path, offset))
        with safe_open(str(edited), framework="pt") as handle:
            digest = weights_sha256({name: handle.get_tensor(name) for name in handle.keys()})
        if (digest > recorded) == (side == "above"):
            break
    with pytest.raises(InputError, match="altered"):
        load_model(edited)


def test_model_of_another_format_version_is_refused(saved):
    path = saved[0]

    def bump(header):
        metadata = json.loads(header["__metadata__"]["wmhda"])
        metadata["format_version"] = 99
        header["__metadata__"]["wmhda"] = json.dumps(metadata)
    _rewrite_header(path, bump)
    with pytest.raises(InputError, match="format version 99"):
        load_model(path)


def edit_metadata(path, change, rehash: bool):
    """Change the metadata in place; with `rehash`, as a tool that knows our hash would."""
    def rewrite(header):
        metadata = json.loads(header["__metadata__"]["wmhda"])
        change(metadata)
        if rehash:
            metadata["metadata_sha256"] = metadata_sha256(metadata)
        header["__metadata__"]["wmhda"] = json.dumps(metadata)
    _rewrite_header(path, rewrite)


def test_input_channels_that_do_not_fit_the_network_are_refused_on_load(saved):
    path = saved[0]
    edit_metadata(path, lambda m: m["input_channels"].append("t2"), rehash=True)
    with pytest.raises(InputError, match="'input_channels'"):
        load_model(path)


def test_metadata_for_a_network_that_does_not_fit_the_preprocessing_is_not_built():
    with pytest.raises(ValueError, match="takes 2 input channels, the preprocessing makes 6"):
        build_metadata(WMHNet(), PreprocessConfig(context_slices=1), 0.5, {})
    with pytest.raises(ValueError, match="takes 6 input channels, the preprocessing makes 2"):
        build_metadata(WMHNet(Architecture(in_channels=6)), PreprocessConfig(), 0.5, {})


def test_safetensors_file_of_another_program_is_refused(tmp_path):
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(other))
    with pytest.raises(InputError, match="not a WMHDomainAdapt model"):
        load_model(other)


def test_the_torch_free_weights_check_agrees_with_the_loader(saved, tmp_path):
    path, _ = saved
    assert check_weights(path) == read_metadata(path)
    altered = tmp_path / "altered.safetensors"
    data = bytearray(path.read_bytes())
    data[-7] ^= 0x01  # one bit of one weight
    altered.write_bytes(bytes(data))
    with pytest.raises(InputError, match="altered"):
        read_metadata(altered)
    with pytest.raises(ValueError, match="altered.safetensors: weights do not match"):
        check_weights(altered)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated.safetensors: not a WMHDomainAdapt model file"):
        check_weights(truncated)


def test_a_loaded_model_reads_its_input_and_cut_as_its_metadata_says(saved):
    model = load_model(saved[0])
    metadata = read_metadata(saved[0])
    assert model.input_spec.size == metadata["architecture"]["in_channels"]
    assert model.cut.fixed == metadata["threshold"] and model.cut is model.cut  # worked out once
