"""An experiment file: which data, which grid of (N scans, K tuned layers), which recipes.

JSON, so researchers can write one for their own two-domain data. Every mistake is reported as
an `InputError` naming the file and the key, before any slow work starts. Dataset paths are
kept as written and resolved later against a data root (the config file's folder, or `--data`),
so the built-in configs can point into any benchmark folder written by `wmhda synth`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..adaptation import AdaptConfig
from ..errors import InputError
from ..model import DEPTH
from ..preprocess import PreprocessConfig
from ..training import TrainConfig

BUILT_IN = ("tiny", "small", "full")
ALL = "all"  # in n_scans: the whole target pool
DATA_KEYS = ("source_model", "source_train", "source_val", "target_pool", "target_test", "reference_tests")


@dataclass(frozen=True)
class DataPaths:
    """Manifests (or folders) of each dataset, and optionally a ready source model file."""

    target_pool: str
    target_test: str
    source_model: str | None = None
    source_train: str | None = None
    source_val: str | None = None
    reference_tests: dict[str, str] = field(default_factory=dict)  # source model only, e.g. source_test


@dataclass(frozen=True)
class FirstLayers:
    """The alternative (Shirokikh et al. 2020): tune the first K layers, for a subset of the grid."""

    n_scans: tuple[int | str, ...] = ()
    tune_layers: tuple[int, ...] = ()


@dataclass(frozen=True)
class ExperimentConfig:
    name: str
    data: DataPaths
    n_scans: tuple[int | str, ...] = (1, 2, 5, 10, 20, ALL)
    tune_layers: tuple[int, ...] = (1, 2, 3, 5, 8, 12, 15)
    draws: int = 3
    seed: int = 0
    first_layers: FirstLayers = FirstLayers()
    preprocess: PreprocessConfig = PreprocessConfig()
    source_training: TrainConfig = field(default_factory=TrainConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    scratch: AdaptConfig = field(default_factory=AdaptConfig)  # same recipe unless overridden
    max_test_cases: int | None = None  # evaluate on the first M test cases only (CPU budgets)
    description: str = ""

    def to_dict(self) -> dict:
        """As recorded in a results folder: the recipes as the flat dicts that config files use."""
        return {**dataclasses.asdict(self), "adapt": self.adapt.to_dict(), "scratch": self.scratch.to_dict()}

    def recipe_fingerprint(self) -> str:
        """Hash of what makes rows comparable; the grid lists may grow on a resumed run."""
        recipe = {"data": dataclasses.asdict(self.data), "seed": self.seed,
                  "max_test_cases": self.max_test_cases,
                  "preprocess": self.preprocess.to_dict(),
                  "source_training": dataclasses.asdict(self.source_training),
                  "adapt": self.adapt.to_dict(), "scratch": self.scratch.to_dict()}
        return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _fail(source, key: str, problem: str) -> InputError:
    return InputError(source, f"'{key}': {problem}")


def _check_keys(source, section: str, data: dict, allowed) -> None:
    if not isinstance(data, dict):
        raise _fail(source, section, f"must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise _fail(source, section, f"unknown key(s) {', '.join(unknown)}; allowed: "
                                     f"{', '.join(sorted(allowed))}")


def _typed(source, key: str, value, expected: type):
    """Ints are accepted for floats; bools are never accepted as numbers."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
        raise _fail(source, key, f"must be {expected.__name__}, got {value!r}")
    return value


def _checked_values(source, section: str, data: dict, defaults: dict) -> dict:
    """Overrides of a recipe, each of its default's type and not negative."""
    _check_keys(source, section, data, defaults)
    values = {key: _typed(source, f"{section}.{key}", value, type(defaults[key]))
              for key, value in data.items()}
    for key, value in values.items():
        if isinstance(value, (int, float)) and value < 0:
            raise _fail(source, f"{section}.{key}", f"must not be negative, got {value}")
    return values


def _training_from(source, section: str, data: dict) -> TrainConfig:
    values = _checked_values(source, section, data, dataclasses.asdict(TrainConfig()))
    return dataclasses.replace(TrainConfig(), **values)


def _adaptation_from(source, section: str, data: dict, base: AdaptConfig | None = None) -> AdaptConfig:
    base = base if base is not None else AdaptConfig()
    return base.replace(**_checked_values(source, section, data, base.to_dict()))


def _layer_list(source, key: str, values) -> tuple[int, ...]:
    if not isinstance(values, list) or not values:
        raise _fail(source, key, "must be a non-empty list of layer counts")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= DEPTH:
            raise _fail(source, key, f"layer counts must be integers 1..{DEPTH}, got {value!r}")
    return tuple(sorted(set(values)))


def _scan_list(source, key: str, values) -> tuple[int | str, ...]:
    if not isinstance(values, list) or not values:
        raise _fail(source, key, f"must be a non-empty list of scan counts (or \"{ALL}\")")
    for value in values:
        if value != ALL and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise _fail(source, key, f"scan counts must be integers >= 1 or \"{ALL}\", got {value!r}")
    numbers = sorted({v for v in values if v != ALL})
    return tuple(numbers) + ((ALL,) if ALL in values else ())


def _data_paths(source, data) -> DataPaths:
    _check_keys(source, "data", data, DATA_KEYS)
    for key in ("target_pool", "target_test"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _fail(source, f"data.{key}", "is required (a manifest CSV or folder)")
    if not data.get("source_model") and not (data.get("source_train") and data.get("source_val")):
        raise _fail(source, "data", "give either source_model (a model file) or both source_train "
                                    "and source_val (to train the source model first)")
    references = data.get("reference_tests", {})
    if not isinstance(references, dict) or not all(isinstance(v, str) for v in references.values()):
        raise _fail(source, "data.reference_tests", "must map test-set names to manifest paths")
    return DataPaths(**{**data, "reference_tests": dict(references)})


def parse_config(data: dict, source: str | Path | None = None) -> ExperimentConfig:
    """An ExperimentConfig from parsed JSON; `source` names the file in error messages."""
    allowed = {f.name for f in dataclasses.fields(ExperimentConfig)}
    _check_keys(source, "experiment", data, allowed)
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise _fail(source, "name", "is required (a short name for the experiment)")
    if "data" not in data:
        raise _fail(source, "data", "is required (the dataset manifests)")
    draws = _typed(source, "draws", data.get("draws", 3), int)
    if draws < 1:
        raise _fail(source, "draws", f"must be at least 1, got {draws}")
    adapt = _adaptation_from(source, "adapt", data.get("adapt", {}))
    max_test = data.get("max_test_cases")
    if max_test is not None and (_typed(source, "max_test_cases", max_test, int) < 1):
        raise _fail(source, "max_test_cases", f"must be at least 1 (or null for all), got {max_test}")
    first = data.get("first_layers", {})
    _check_keys(source, "first_layers", first, ("n_scans", "tune_layers"))
    if first and set(first) != {"n_scans", "tune_layers"}:
        raise _fail(source, "first_layers", "needs both n_scans and tune_layers (or leave it out)")
    try:
        preprocess = PreprocessConfig.from_dict(data.get("preprocess", {}))
    except (InputError, TypeError) as error:
        raise _fail(source, "preprocess", str(error)) from None
    return ExperimentConfig(
        name=data["name"], data=_data_paths(source, data["data"]),
        n_scans=_scan_list(source, "n_scans", data.get("n_scans", list(ExperimentConfig.n_scans))),
        tune_layers=_layer_list(source, "tune_layers",
                                data.get("tune_layers", list(ExperimentConfig.tune_layers))),
        draws=draws, seed=_typed(source, "seed", data.get("seed", 0), int),
        first_layers=FirstLayers(
            _scan_list(source, "first_layers.n_scans", first["n_scans"]) if first else (),
            _layer_list(source, "first_layers.tune_layers", first["tune_layers"]) if first else ()),
        preprocess=preprocess,
        source_training=_training_from(source, "source_training", data.get("source_training", {})),
        adapt=adapt, scratch=_adaptation_from(source, "scratch", data.get("scratch", {}), adapt),
        max_test_cases=max_test, description=str(data.get("description", "")))


def with_source_model(config: ExperimentConfig, path: str) -> ExperimentConfig:
    """The config with a ready source model file instead of training one (e.g. `--source-model`)."""
    return dataclasses.replace(config, data=dataclasses.replace(config.data, source_model=str(path)))


def built_in_path(name: str) -> Path:
    return Path(str(resources.files("WMHDomainAdaptLib") / "configs" / f"{name}.json"))


def load_config(name_or_path: str | Path) -> tuple[ExperimentConfig, Path]:
    """A built-in config by name (tiny, small, full) or a JSON file; returns it and its file."""
    path = built_in_path(str(name_or_path)) if str(name_or_path) in BUILT_IN else Path(name_or_path)
    if not path.is_file():
        raise InputError(path, f"experiment config not found (built-in ones: {', '.join(BUILT_IN)})")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(path, f"not valid JSON (line {error.lineno}: {error.msg})") from None
    return parse_config(data, path), path
