"""The 15-layer chain: depth, freezing, cached-state equivalence."""

import pytest
import torch

from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.model import DEPTH, Architecture, WMHNet, layer_table, with_input_channels
from WMHDomainAdaptLib.training import masked_bce


def test_network_has_fifteen_weight_layers_in_one_chain():
    network = WMHNet()
    assert len(network.layers) == DEPTH == 15
    assert all(any(p.dim() == 4 for p in layer.parameters()) for layer in network.layers)


def test_output_has_the_input_in_plane_size_for_odd_sizes():
    logits = WMHNet()(torch.randn(2, 2, 37, 51))
    assert logits.shape == (2, 1, 37, 51)


def test_layer_table_reports_a_receptive_field_of_at_least_64_voxels():
    table = layer_table()
    assert [row["index"] for row in table] == list(range(15))
    assert table[-1]["receptive_field"] >= 64
    assert sum(row["parameters"] for row in table) == sum(p.numel() for p in WMHNet().parameters())


@pytest.mark.parametrize("start", [0, 1, 2, 5, 13, 14, 15])
def test_running_from_a_cached_state_equals_the_full_forward(start):
    network = WMHNet().eval()
    image = torch.randn(3, 2, 32, 40)
    state = network.encode(image, start)
    assert torch.allclose(network.forward_from(start, state), network(image), atol=1e-6)


def test_frozen_layers_keep_weights_and_batch_norm_statistics_after_a_training_step(device):
    torch.manual_seed(0)
    network = WMHNet().to(device)
    network.freeze_first(10)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    optimizer = torch.optim.Adam([p for p in network.parameters() if p.requires_grad], lr=1e-2)
    network.train()
    image, label = torch.randn(4, 2, 32, 32), (torch.rand(4, 1, 32, 32) > 0.8).to(torch.uint8)
    loss = masked_bce(network(image.to(device)), label.to(device))
    loss.backward()
    optimizer.step()
    after = network.state_dict()
    for name, value in before.items():
        layer = int(name.split(".")[1])
        changed = not torch.equal(value, after[name])
        if layer < 10:
            assert not changed, f"frozen {name} changed"
    tuned_weights = [n for n in before if int(n.split(".")[1]) >= 10 and n.endswith("weight")]
    assert all(not torch.equal(before[n], after[n]) for n in tuned_weights)
    assert all(not torch.equal(before[n], after[n]) for n in before
               if int(n.split(".")[1]) >= 10 and n.endswith("running_mean"))


def test_freezing_outside_zero_to_fifteen_is_refused():
    with pytest.raises(ValueError):
        WMHNet().freeze_first(16)


def test_a_network_given_extra_input_channels_computes_what_it_computed_before_until_trained():
    torch.manual_seed(0)
    network = WMHNet(Architecture(fine_width=4, coarse_width=4)).eval()
    widened = with_input_channels(network, 6).eval()
    image = torch.randn(2, 6, 32, 32)
    assert widened.layers[0].conv.in_channels == 6
    assert torch.allclose(widened(image), network(image[:, :2]), atol=1e-5)
    assert widened.layers[0].conv.weight is not network.layers[0].conv.weight


def test_dropping_input_channels_is_refused():
    with pytest.raises(InputError, match="cannot drop input channels"):
        with_input_channels(WMHNet(Architecture(in_channels=6)), 2)


@pytest.mark.parametrize("frozen, prefix", [([], 0), ([0, 1, 2], 3), (list(range(15)), 15), ([0, 2], -1),
                                            ([1, 2], -1), ([14], -1)])
def test_the_recorded_frozen_prefix_is_its_length_or_minus_one_when_not_a_prefix(frozen, prefix):
    network = WMHNet()
    network.freeze(frozen)
    assert network.frozen_layers == prefix and sorted(network.frozen) == frozen


def test_the_layer_tables_receptive_field_is_the_extent_the_output_depends_on():
    """The last row's field, against the input pixels that move the centre output pixel (autograd)."""
    torch.manual_seed(0)
    network = WMHNet().double().eval()
    size = 2 * layer_table()[-1]["receptive_field"] + 17
    reach = torch.zeros(size, size, dtype=torch.bool)
    for _ in range(3):  # a few inputs: a ReLU that is off for one may be on for another
        image = torch.randn(1, 2, size, size, dtype=torch.float64, requires_grad=True)
        network(image)[0, 0, size // 2, size // 2].backward()
        reach |= image.grad.abs().sum(0).sum(0) > 0
    rows, columns = torch.nonzero(reach.any(1)).flatten(), torch.nonzero(reach.any(0)).flatten()
    extent = max(int(rows.max() - rows.min()) + 1, int(columns.max() - columns.min()) + 1)
    assert extent == layer_table()[-1]["receptive_field"]
    assert sum(row["parameters"] for row in layer_table()) == sum(p.numel() for p in network.parameters())


def test_an_architecture_with_the_wrong_number_of_dilations_is_refused_naming_the_count():
    with pytest.raises(ValueError, match="need 10 coarse dilations, got 3"):
        WMHNet(Architecture(dilations=(1, 2, 4)))
