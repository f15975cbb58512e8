"""A tiny real training run, whole-volume segmentation geometry, and bad inputs."""

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from phantom import phantom_arrays, phantom_image, write_phantom_case

from WMHDomainAdaptLib.cases import prepare_cases
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.inference import segment
from WMHDomainAdaptLib.model import WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, load_model, save_model
from WMHDomainAdaptLib.network_input import InputSpec
from WMHDomainAdaptLib.preprocess import PreprocessConfig
from WMHDomainAdaptLib.training import TrainConfig, train_network

PREPROCESSING = PreprocessConfig(n4=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    cases = prepare_cases([write_phantom_case(folder, seed) for seed in range(4)], PREPROCESSING, True)
    torch.manual_seed(0)
    network = WMHNet()
    config = TrainConfig(patch_size=32, batch_size=32, epochs=6, steps_per_epoch=8, patience=6)
    result = train_network(network, InputSpec.of(PREPROCESSING), cases[:3], cases[3:], config,
                           torch.device("cpu"))
    path = save_model(folder / "model.safetensors", network,
                      build_metadata(network, PREPROCESSING, 0.5, {"domain": "phantom"}))
    return result, path


def test_a_short_training_run_raises_validation_dice_well_above_its_start(trained):
    result, _ = trained
    dice = [row["val_dice"] for row in result.history]
    assert result.best_val_dice > dice[0] + 0.2
    assert result.best_val_dice > 0.3


def test_training_is_deterministic_for_a_seed(tmp_path):
    cases = prepare_cases([write_phantom_case(tmp_path, s) for s in (5, 6)], PREPROCESSING, True)
    config = TrainConfig(patch_size=32, batch_size=16, epochs=2, steps_per_epoch=3)
    states = []
    for _ in range(2):
        network = WMHNet()
        torch.manual_seed(123)
        network.reset_parameters()
        train_network(network, InputSpec.of(PREPROCESSING), cases[:1], cases[1:], config, torch.device("cpu"))
        states.append(network.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_segmentation_keeps_the_flair_geometry_of_an_oblique_anisotropic_volume(trained):
    model = load_model(trained[1])
    t1, flair, _ = phantom_arrays(42)
    flair_image = phantom_image(flair, spacing=(0.9, 1.3, 4.0), origin=(3.0, -7.0, 11.0))
    t1_image = phantom_image(t1, spacing=(0.9, 1.3, 4.0), origin=(3.0, -7.0, 11.0))
    result = segment(model, t1_image, flair_image, device="cpu")
    for output in (result.mask, result.probability):
        assert output.GetSize() == flair_image.GetSize()
        assert output.GetSpacing() == flair_image.GetSpacing()
        assert output.GetOrigin() == flair_image.GetOrigin()
        assert output.GetDirection() == flair_image.GetDirection()
    mask = sitk.GetArrayFromImage(result.mask)
    assert set(np.unique(mask)) <= {0, 1}
    assert result.lesion_volume_ml == pytest.approx(mask.sum() * 0.9 * 1.3 * 4.0 / 1000)


def test_model_with_other_input_channels_is_refused_with_a_clear_error(trained, tmp_path):
    model = load_model(trained[1])
    model.metadata["input_channels"] = ["t1", "flair", "t2"]
    t1, flair, _ = phantom_arrays(3)
    with pytest.raises(InputError, match="expects 3 input channels"):
        segment(model, phantom_image(t1), phantom_image(flair), device="cpu")


def test_empty_brain_mask_is_refused(trained):
    model = load_model(trained[1])
    t1, flair, _ = phantom_arrays(3)
    with pytest.raises(InputError, match="empty"):
        segment(model, phantom_image(t1), phantom_image(flair),
                brain_mask=np.zeros(t1.shape, bool), device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_segmentation_on_cuda_matches_the_cpu(trained):
    t1, flair, _ = phantom_arrays(3)
    results = [segment(load_model(trained[1]), phantom_image(t1), phantom_image(flair), device=device)
               for device in ("cpu", "cuda")]
    cpu, gpu = (sitk.GetArrayFromImage(result.probability) for result in results)
    assert np.abs(cpu - gpu).max() < 1e-3
    masks = [sitk.GetArrayFromImage(result.mask) for result in results]
    assert (masks[0] != masks[1]).sum() <= 0.001 * masks[0].size


def test_gpu_requested_without_a_gpu_is_a_clear_error(trained):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    t1, flair, _ = phantom_arrays(3)
    with pytest.raises(InputError, match="no usable CUDA GPU"):
        segment(load_model(trained[1]), phantom_image(t1), phantom_image(flair), device="cuda")
