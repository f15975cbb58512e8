"""The 15-layer WMH network: one input-to-output chain of weight layers.

The paper fine-tunes "the last d - i layers" of a depth d = 15 CNN, so the network is a plain chain
`layers[0] ... layers[14]` in which freezing the shallowest i layers is well defined for every i.
Widths and kernels are not published; ours are chosen for a 2-core CPU:

* two full-resolution 3x3 layers see fine detail (punctate lesions are a few voxels);
* one strided layer halves the in-plane grid, so the ten dilated layers after it cost a quarter
  and reach a receptive field of 81 voxels (81 mm in x, 97 mm in y at 1 x 1.2 mm) for periventricular context;
* a fusion layer upsamples and concatenates the output of layer 2 (the chain's only skip: it
  carries full-resolution detail past the coarse layers), then a 1x1 layer gives the logit.

The state flowing along the chain is `(features, skip)`; `skip` is set by layer 2 and consumed by
layer 14. Running `forward_from(i, state)` on the cached state after layer i is what makes
adaptation fast: frozen layers are computed once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn
from torch.nn import functional as F

from .errors import InputError
from .recommendation import DEPTH  # noqa: E402  (kept torch-free there, for the Slicer GUI)

SKIP_SOURCE = 1  # layers[1] (the second layer) feeds the skip
FUSION = 13      # layers[13] (the 14th) consumes it

State = tuple[torch.Tensor, "torch.Tensor | None"]


@dataclass(frozen=True)
class Architecture:
    """The few numbers that define the network; stored in every model file."""

    in_channels: int = 2
    fine_width: int = 16
    coarse_width: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 4, 2, 1, 1, 1, 1, 1)  # the ten coarse layers

    def __post_init__(self) -> None:
        if min(self.fine_width, self.coarse_width) < 1:
            raise InputError(None, f"layer widths (--fine-width, --coarse-width) must be at least 1, "
                                   f"got {self.fine_width} and {self.coarse_width}")

    def to_dict(self) -> dict:
        data = asdict(self)
        data["dilations"] = list(self.dilations)
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "Architecture":
        return cls(**{**data, "dilations": tuple(data["dilations"])})


class ConvBlock(nn.Module):
    """3x3 convolution (optionally strided or dilated) + batch norm + ReLU."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=dilation,
                              dilation=dilation, bias=False)
        self.norm = nn.BatchNorm2d(out_ch)

    def forward(self, state: State) -> State:
        features, skip = state
        return F.relu(self.norm(self.conv(features))), skip


class SkipSource(ConvBlock):
    """A ConvBlock whose output also becomes the skip for the fusion layer."""

    def forward(self, state: State) -> State:
        features, _ = super().forward(state)
        return features, features


class FusionBlock(ConvBlock):
    """Upsample the coarse features to the skip's grid, concatenate, convolve."""

    def forward(self, state: State) -> State:
        features, skip = state
        upsampled = F.interpolate(features, scale_factor=2.0, mode="nearest")
        upsampled = upsampled[..., : skip.shape[-2], : skip.shape[-1]]
        return super().forward((torch.cat([upsampled, skip], dim=1), None))


class OutputLayer(nn.Module):
    """1x1 convolution to one logit per pixel."""

    def __init__(self, in_ch: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, 1, 1)

    def forward(self, state: State) -> State:
        return self.conv(state[0]), None


class WMHNet(nn.Module):
    """The chain; `layers[i]` is the (i+1)-th weight layer."""

    def __init__(self, architecture: Architecture | None = None):
        super().__init__()
        self.architecture = arch = architecture or Architecture()
        if len(arch.dilations) != DEPTH - 5:
            raise ValueError(f"need {DEPTH - 5} coarse dilations, got {len(arch.dilations)}")
        fine, coarse = arch.fine_width, arch.coarse_width
        layers: list[nn.Module] = [ConvBlock(arch.in_channels, fine), SkipSource(fine, fine),
                                   ConvBlock(fine, coarse, stride=2)]
        layers += [ConvBlock(coarse, coarse, dilation=d) for d in arch.dilations]
        layers += [FusionBlock(coarse + fine, fine), OutputLayer(fine)]
        self.layers = nn.ModuleList(layers)
        self.frozen: frozenset[int] = frozenset()
        self.frozen_layers = 0  # length of the frozen prefix; -1 when the frozen set is not a prefix
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) initialization for the ReLU layers, as in the paper."""
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def encode(self, image: torch.Tensor, upto: int) -> State:
        """The chain state after the first `upto` layers (what adaptation caches)."""
        state: State = (image, None)
        for layer in self.layers[:upto]:
            state = layer(state)
        return state

    def forward_from(self, start: int, state: State) -> torch.Tensor:
        """Logits from the chain state after layer `start`."""
        for layer in self.layers[start:]:
            state = layer(state)
        return state[0]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.forward_from(0, (image, None))

    def freeze_first(self, count: int) -> None:
        """Freeze the shallowest `count` layers: no gradients, batch-norm statistics fixed."""
        if not 0 <= count <= DEPTH:
            raise ValueError(f"can freeze 0..{DEPTH} layers, not {count}")
        self.freeze(range(count))

    def freeze(self, indices) -> None:
        """Freeze any set of layers (e.g. the deepest ones, to tune the first layers instead)."""
        self.frozen = frozenset(int(i) for i in indices)
        prefix = 0
        while prefix in self.frozen:
            prefix += 1
        self.frozen_layers = prefix if len(self.frozen) == prefix else -1
        for index, layer in enumerate(self.layers):
            for parameter in layer.parameters():
                parameter.requires_grad_(index not in self.frozen)
        self.train(self.training)

    def train(self, mode: bool = True) -> "WMHNet":
        """Like nn.Module.train, but frozen layers stay in eval mode (their BN stats never move)."""
        super().train(mode)
        for index in getattr(self, "frozen", ()):
            self.layers[index].eval()
        return self


def seeded_network(architecture: Architecture, seed: int) -> WMHNet:
    """A fresh network whose He weights are drawn from `seed`.

    Why: the training loop seeds the patches and batches, but the starting weights are drawn when
    the network is built, before it; a rerun starts from the same point only if this seeds too.
    """
    torch.manual_seed(seed)
    return WMHNet(architecture)


def with_input_channels(network: WMHNet, in_channels: int) -> WMHNet:
    """A copy of `network` whose first layer takes `in_channels` inputs; the added ones weigh zero.

    Why: a trained 2D model can go on training with through-plane context instead of starting
    over. Added channels come after the existing ones (as `input_channel_names` orders them), so
    the copy computes exactly what `network` computes until training gives them weight.
    """
    old = network.architecture.in_channels
    if in_channels < old:
        raise InputError(None, f"cannot drop input channels: the model takes {old}, asked for {in_channels}")
    widened = WMHNet(replace(network.architecture, in_channels=in_channels))
    state = {name: tensor.clone() for name, tensor in network.state_dict().items()}
    first = state["layers.0.conv.weight"]
    state["layers.0.conv.weight"] = torch.cat(
        [first, first.new_zeros(first.shape[0], in_channels - old, *first.shape[2:])], dim=1)
    widened.load_state_dict(state)
    return widened


def layer_table(architecture: Architecture | None = None) -> list[dict]:
    """Index, kind, width, in-plane receptive field (voxels) and parameter count of each layer."""
    net = WMHNet(architecture)
    rows, field, jump = [], 1, 1
    for index, layer in enumerate(net.layers):
        conv = layer.conv
        if isinstance(layer, FusionBlock):
            kind = "upsample x2 + concat layer-2 skip + conv3x3"
            jump //= 2
        elif isinstance(layer, OutputLayer):
            kind = "conv1x1 -> logit"
        else:
            kind = f"conv3x3 stride {conv.stride[0]} dilation {conv.dilation[0]}"
        field += (conv.kernel_size[0] - 1) * conv.dilation[0] * jump
        jump *= conv.stride[0]
        suffix = "" if isinstance(layer, OutputLayer) else " + BN + ReLU"
        rows.append({"index": index, "kind": kind + suffix,
                     "in": conv.in_channels, "out": conv.out_channels, "receptive_field": field,
                     "parameters": sum(p.numel() for p in layer.parameters())})
    return rows
