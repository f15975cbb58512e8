"""The metadata that decides results is covered by the file's hash and checked field by field.

Editing the threshold, the channel order or the N4 switch in a model file changed results on
881eaef and loaded without a word; now each edit is refused in one line naming the file.
"""

from __future__ import annotations

import json
import struct
import warnings

import pytest
from phantom import save_tiny_model

from WMHDomainAdaptLib.errors import InputError, InputWarning
from WMHDomainAdaptLib.modelfile import load_model, read_metadata
from WMHDomainAdaptLib.modelheader import check_weights, metadata_sha256

EDITS = {
    "threshold": lambda m: m.update(threshold=0.05),
    "channel order": lambda m: m.update(input_channels=m["input_channels"][::-1]),
    "N4 switch": lambda m: m["preprocessing"].update(n4=not m["preprocessing"]["n4"]),
    "per-scan rule": lambda m: m.update(scan_threshold={"intercept": 0.9, "slope": 0.0}),
    "clip": lambda m: m["preprocessing"].update(clip=1.0),
}
BAD_FIELDS = {
    "threshold as text": (lambda m: m.update(threshold="0.5"), "'threshold'"),
    "threshold above 1": (lambda m: m.update(threshold=1.5), "'threshold'"),
    "threshold of 0": (lambda m: m.update(threshold=0), "'threshold'"),
    "threshold of 1": (lambda m: m.update(threshold=1.0), "'threshold'"),
    "negative threshold": (lambda m: m.update(threshold=-0.5), "'threshold'"),
    "shrink as a bool": (lambda m: m["preprocessing"].update(n4_shrink=True), "preprocessing.n4_shrink"),
    "n4 as a number": (lambda m: m["preprocessing"].update(n4=1), "preprocessing.n4"),
    "n4 as text": (lambda m: m["preprocessing"].update(n4="yes"), "preprocessing.n4"),
    "shrink as float": (lambda m: m["preprocessing"].update(n4_shrink=4.5), "preprocessing.n4_shrink"),
    "clip as text": (lambda m: m["preprocessing"].update(clip="6"), "preprocessing.clip"),
    "channels reordered": (lambda m: m.update(input_channels=["flair", "t1"]), "'input_channels'"),
    "frozen layer out of range": (lambda m: m.update(frozen_layer_indices=[99]), "numbers 0 to 14, got [99]"),
    "frozen layer one past the last": (lambda m: m.update(frozen_layer_indices=[15]), "0 to 14"),
    "frozen layer -1": (lambda m: m.update(frozen_layer_indices=[-1]), "0 to 14"),
    "more network channels than named": (lambda m: m["architecture"].update(in_channels=3),
                                         "architecture.in_channels"),
    "fewer network channels than named": (lambda m: m["architecture"].update(in_channels=1),
                                          "architecture.in_channels"),
    "per-scan rule without a slope": (lambda m: m.update(scan_threshold={"intercept": 0.5}), "per-scan"),
    "per-scan rule with a text slope": (lambda m: m.update(scan_threshold={"intercept": 0.5, "slope": "x"}),
                                        "per-scan"),
    "unknown option": (lambda m: m["preprocessing"].update(sharpen=True), "unknown preprocessing"),
    "preprocessing a list": (lambda m: m.update(preprocessing=[1, 2]), "'preprocessing'"),
}


@pytest.fixture
def model_file(tmp_path):
    return save_tiny_model(tmp_path / "model.safetensors")


def rewrite_metadata(path, change, rehash: bool) -> None:
    data = path.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    metadata = json.loads(header["__metadata__"]["wmhda"])
    change(metadata)
    if rehash:
        metadata["metadata_sha256"] = metadata_sha256(metadata)
    header["__metadata__"]["wmhda"] = json.dumps(metadata)
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size:])


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_an_edit_to_the_metadata_that_decides_results_is_refused(model_file, edit):
    rewrite_metadata(model_file, edit, rehash=False)
    with pytest.raises(InputError, match="model.safetensors: metadata does not match its recorded hash"):
        load_model(model_file)
    with pytest.raises(ValueError, match="metadata does not match"):
        check_weights(model_file)  # the Slicer GUI's torch-free check sees it too


@pytest.mark.parametrize("edit,field", BAD_FIELDS.values(), ids=BAD_FIELDS.keys())
def test_a_field_of_the_wrong_type_or_range_is_refused_in_one_line_even_rehashed(model_file, edit, field):
    rewrite_metadata(model_file, edit, rehash=True)
    with pytest.raises(InputError) as raised:
        read_metadata(model_file)
    message = str(raised.value)
    assert message.startswith(str(model_file)) and field in message and "\n" not in message


def test_a_format_1_file_still_loads_with_a_warning_that_its_metadata_is_unprotected(model_file):
    def as_version_1(metadata):
        metadata["format_version"] = 1
        del metadata["metadata_sha256"]
    rewrite_metadata(model_file, as_version_1, rehash=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_model(model_file)
    assert [w for w in caught if issubclass(w.category, InputWarning) and "format 1" in str(w.message)]


@pytest.mark.parametrize("key", ["architecture", "preprocessing", "threshold", "input_channels",
                                 "weights_sha256"])
def test_a_file_whose_metadata_lacks_a_field_that_decides_results_is_refused_naming_it(model_file, key):
    rewrite_metadata(model_file, lambda m: m.pop(key), rehash=True)
    with pytest.raises(InputError, match=f"lacks '{key}'"):
        read_metadata(model_file)


def test_metadata_that_is_not_json_is_one_line(model_file):
    data = model_file.read_bytes()
    size = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + size])
    header["__metadata__"]["wmhda"] = "{not json"
    encoded = json.dumps(header).encode()
    encoded += b" " * ((8 - len(encoded) % 8) % 8)
    model_file.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data[8 + size:])
    with pytest.raises(InputError, match="not valid JSON"):
        load_model(model_file)


def test_a_format_2_file_loads_without_a_warning(model_file):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_model(model_file)


def test_a_format_1_file_that_names_no_frozen_layers_loads_with_none_frozen(model_file):
    def as_old_version_1(metadata):
        metadata["format_version"] = 1
        for key in ("metadata_sha256", "frozen_layer_indices", "frozen_layers"):
            metadata.pop(key, None)
    rewrite_metadata(model_file, as_old_version_1, rehash=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InputWarning)
        network = load_model(model_file).network
    assert sorted(network.frozen) == []


def test_metadata_with_a_nan_is_not_saved(tmp_path):
    import torch

    from WMHDomainAdaptLib.model import WMHNet
    from WMHDomainAdaptLib.modelfile import build_metadata, save_model
    from WMHDomainAdaptLib.preprocess import PreprocessConfig
    torch.manual_seed(0)
    network = WMHNet()
    metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"best_val_dice": float("nan")})
    with pytest.raises(ValueError):
        save_model(tmp_path / "nan.safetensors", network, metadata)
    assert not (tmp_path / "nan.safetensors").exists()


def test_weights_that_do_not_fit_the_architecture_are_refused_even_with_a_matching_hash(model_file, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import save_file

    from WMHDomainAdaptLib.modelfile import weights_sha256
    with safe_open(str(model_file), framework="pt") as handle:
        metadata = json.loads(handle.metadata()["wmhda"])
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    tensors.pop(sorted(tensors)[0])  # a tensor the network needs is missing, the hashes made to agree
    metadata["weights_sha256"] = weights_sha256(tensors)
    metadata["metadata_sha256"] = metadata_sha256(metadata)
    crafted = tmp_path / "crafted.safetensors"
    save_file(tensors, str(crafted), metadata={"wmhda": json.dumps(metadata)})
    expected = r"weights do not fit the recorded architecture \(Error\(s\) in loading"
    with pytest.raises(InputError, match=expected):
        load_model(crafted)


def test_a_new_file_records_the_hash_of_its_metadata(model_file):
    metadata = read_metadata(model_file)
    assert metadata["format_version"] == 2 and metadata["metadata_sha256"] == metadata_sha256(metadata)
