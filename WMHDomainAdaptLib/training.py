"""The paper's training recipe, shared by source training, training from scratch and adaptation.

Adam, mini-batch 128, binary cross-entropy, L2 weight decay 1e-4, an exponentially decaying
learning rate, early stopping on validation Dice with the best weights kept. `fit` trains the
layers from `start` on: 0 for a whole network, i for adaptation of the last d - i layers, where the
batches carry the chain state after layer i (possibly cached) instead of images.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from .cases import PreparedCase
from .decision import best_threshold
from .errors import Cancelled, InputError
from .inference import predict_probability
from .metrics import pooled_dice
from .model import State, WMHNet
from .network_input import InputSpec
from .patches import PatchSampler, augment
from .progress import CancelToken, ProgressCallback, ProgressTracker

Batch = tuple[State, torch.Tensor]  # chain state after layer `start`, labels (n, 1, h, w) in {0,1,2}


@dataclass
class TrainConfig:
    patch_size: int = 64
    batch_size: int = 128
    learning_rate: float = 1e-3
    lr_decay: float = 0.93        # learning rate multiplied by this after every epoch
    weight_decay: float = 1e-4    # L2
    epochs: int = 40
    steps_per_epoch: int = 20
    patience: int = 8             # epochs without a better validation Dice before stopping
    lesion_fraction: float = 0.5
    lesion_balance: float = 0.0   # share of lesion patches centred on a lesion drawn per lesion
    augment: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        """Refuse settings that would train silently wrong (a growing rate, a share above one)."""
        if not 0.0 < self.lr_decay <= 1.0:
            raise InputError(None, f"learning rate decay (--lr-decay) must be in (0, 1], got {self.lr_decay}")
        if not 0.0 <= self.lesion_balance <= 1.0:
            raise InputError(None, f"lesion balance (--lesion-balance) must be in [0, 1], "
                                   f"got {self.lesion_balance}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    best_state: dict
    best_val_dice: float
    best_epoch: int
    epochs_run: int
    interrupted: bool
    seconds: float
    history: list[dict] = field(default_factory=list)


def seed_everything(seed: int) -> np.random.Generator:
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def masked_bce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy; label 2 ("other pathology") is ignored as in the WMH challenge."""
    weight = (labels != 2).float()
    target = (labels == 1).float()
    return F.binary_cross_entropy_with_logits(logits, target, weight=weight)


def make_optimizer(network: WMHNet, config: TrainConfig) -> torch.optim.Adam:
    """Adam with L2 weight decay over the layers that are not frozen."""
    trainable = [p for p in network.parameters() if p.requires_grad]
    return torch.optim.Adam(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)


def train_step(network: WMHNet, optimizer: torch.optim.Optimizer, start: int, state, labels) -> torch.Tensor:
    """One mini-batch from the chain state after layer `start`: BCE, backward, Adam step; the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = masked_bce(network.forward_from(start, state), labels)
    loss.backward()
    optimizer.step()
    return loss


def fit(network: WMHNet, start: int, epoch_batches: Callable[[int], Iterable[Batch]],
        validate: Callable[[], float], config: TrainConfig, device: torch.device,
        progress: ProgressCallback | None = None, cancel: CancelToken | None = None,
        on_improve: Callable[[dict, float, int], None] | None = None) -> TrainResult:
    """Train layers[start:] with early stopping; returns the best weights seen (by validation Dice)."""
    network.to(device)
    optimizer = make_optimizer(network, config)
    schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=config.lr_decay)
    tracker = ProgressTracker("train", config.epochs, progress, cancel)
    best = TrainResult(copy.deepcopy(network.state_dict()), -1.0, 0, 0, False, 0.0)
    began = time.monotonic()
    try:
        for epoch in range(1, config.epochs + 1):
            network.train()
            losses = []
            for state, labels in epoch_batches(epoch):
                if cancel is not None:
                    cancel.check()
                losses.append(train_step(network, optimizer, start, state, labels).item())
            schedule.step()
            dice = validate()
            best.history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_dice": dice})
            best.epochs_run = epoch
            if dice > best.best_val_dice:
                best.best_state = copy.deepcopy(network.state_dict())
                best.best_val_dice, best.best_epoch = dice, epoch
                if on_improve is not None:
                    on_improve(best.best_state, dice, epoch)
            tracker.update(epoch, loss=float(np.mean(losses)), val_dice=dice, best=best.best_val_dice)
            if epoch - best.best_epoch >= config.patience:
                break
    except (Cancelled, KeyboardInterrupt):
        best.interrupted = True
    best.seconds = time.monotonic() - began
    network.load_state_dict(best.best_state)
    return best


def to_device_batch(images: np.ndarray, labels: np.ndarray, device: torch.device) -> Batch:
    return (torch.from_numpy(images).to(device), None), torch.from_numpy(labels).to(device)


def volume_validator(network: WMHNet, spec: InputSpec, cases: list[PreparedCase], device: torch.device
                     ) -> Callable[[], float]:
    """Validation by pooled Dice of whole-volume predictions (what the user will get)."""
    def validate() -> float:
        probabilities = [predict_probability(network, spec, c, device) for c in cases]
        return pooled_dice(probabilities, [c.label for c in cases])
    return validate


def choose_threshold(network: WMHNet, spec: InputSpec, cases: list[PreparedCase], device: torch.device
                     ) -> tuple[float, float]:
    """The probability threshold maximizing pooled Dice of whole validation volumes, and that Dice."""
    probabilities = [predict_probability(network, spec, c, device) for c in cases]
    return best_threshold(probabilities, [c.label for c in cases])


def train_network(network: WMHNet, spec: InputSpec, train_cases: list[PreparedCase],
                  val_cases: list[PreparedCase],
                  config: TrainConfig, device: torch.device, progress: ProgressCallback | None = None,
                  cancel: CancelToken | None = None,
                  on_improve: Callable[[dict, float, int], None] | None = None) -> TrainResult:
    """Train a whole network (source model, or a target model from scratch) on fresh patches."""
    rng = seed_everything(config.seed)
    sampler = PatchSampler(train_cases, spec, config.patch_size, config.lesion_fraction,
                           lesion_balance=config.lesion_balance)

    def epoch_batches(epoch: int) -> Iterable[Batch]:
        for _ in range(config.steps_per_epoch):
            images, labels = sampler.sample(config.batch_size, rng)
            if config.augment:
                images, labels = augment(images, labels, rng)
            yield to_device_batch(images, labels, device)

    validate = volume_validator(network, spec, val_cases, device)
    return fit(network, 0, epoch_batches, validate, config, device, progress, cancel, on_improve)
