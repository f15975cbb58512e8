"""`wmhda experiment`: config parsing, the run grid, resume after a kill, and a tiny end-to-end study."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from phantom import write_phantom_case

from WMHDomainAdaptLib.cli import main
from WMHDomainAdaptLib.dataset import load_cases, write_manifest
from WMHDomainAdaptLib.errors import InputError
from WMHDomainAdaptLib.experiments.aggregate import proposed_table, summarize_rows
from WMHDomainAdaptLib.experiments.config import BUILT_IN, load_config, parse_config
from WMHDomainAdaptLib.experiments.data import prepare_cached
from WMHDomainAdaptLib.experiments.findings import FAILS, HOLDS, all_findings
from WMHDomainAdaptLib.experiments.grid import FINETUNE, SCRATCH, SOURCE, build_grid
from WMHDomainAdaptLib.experiments.report import write_report
from WMHDomainAdaptLib.experiments.runner import run_experiment
from WMHDomainAdaptLib.experiments.table import read_rows, row_key
from WMHDomainAdaptLib.model import WMHNet
from WMHDomainAdaptLib.modelfile import build_metadata, save_model
from WMHDomainAdaptLib.network_input import InputSpec
from WMHDomainAdaptLib.preprocess import PreprocessConfig
from WMHDomainAdaptLib.scan_threshold import ScanThreshold

TINY_RECIPE = {"epochs": 1, "patience": 1, "patches_per_case": 16, "patch_size": 32, "batch_size": 16}
SETS = {"source_train": ((1, 2), 1.8), "source_val": ((3,), 1.8), "source_test": ((4,), 1.8),
        "target_pool": ((10, 11, 12), 1.4), "target_test": ((20, 21), 1.4)}


def config_dict(**changes) -> dict:
    data = {"name": "test", "data": {name: f"{name}/manifest.csv" for name in SETS if name != "source_test"},
            "n_scans": [1, 2], "tune_layers": [1, 15], "draws": 1,
            "first_layers": {"n_scans": [1], "tune_layers": [1]}, "preprocess": {"n4": False},
            "source_training": {"epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "patch_size": 32},
            "adapt": dict(TINY_RECIPE)}
    data["data"]["reference_tests"] = {"source_test": "source_test/manifest.csv"}
    data.update(changes)
    return data


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two torch threads on two cores shared with other jobs run ~30x slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def phantom_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("two_domains")
    for name, (seeds, gain) in SETS.items():
        cases = [write_phantom_case(root / name, seed, lesion_gain=gain) for seed in seeds]
        write_manifest(cases, root / name / "manifest.csv")
    torch.manual_seed(0)
    network = WMHNet()
    save_model(root / "source.safetensors", network,
               build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source"}))
    return root


@pytest.fixture(scope="module")
def finished(phantom_root, tmp_path_factory):
    """A whole tiny experiment, the source model trained by it, plus its report and figures."""
    out = tmp_path_factory.mktemp("finished")
    run_experiment(parse_config(config_dict()), phantom_root, out, "cpu")
    return out, write_report(out)


# --- configs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", BUILT_IN)
def test_built_in_configs_load_by_name(name):
    config, path = load_config(name)
    assert config.name == name and path.name == f"{name}.json"
    assert config.data.target_pool and config.data.target_test


def test_full_config_spans_the_issues_default_grid():
    config, _ = load_config("full")
    assert config.n_scans == (1, 2, 5, 10, 20, "all")
    assert config.tune_layers == (1, 2, 3, 5, 8, 12, 15) and config.draws == 3


def test_scratch_recipe_starts_from_the_adaptation_recipe():
    config = parse_config(config_dict(scratch={"epochs": 5}))
    assert config.scratch.training.epochs == 5 and config.adapt.training.epochs == 1
    assert config.scratch.training.patch_size == config.adapt.training.patch_size == 32


def test_grid_lists_are_sorted_and_deduplicated():
    config = parse_config(config_dict(n_scans=["all", 2, 1, 2], tune_layers=[15, 1, 1]))
    assert config.n_scans == (1, 2, "all") and config.tune_layers == (1, 15)


def _without_source(data):
    del data["data"]["source_train"]
    return data


BAD_CONFIGS = [
    (lambda d: d | {"epochz": 3}, "epochz"),
    (lambda d: d | {"tune_layers": [0, 3]}, "tune_layers"),
    (lambda d: d | {"tune_layers": [16]}, "tune_layers"),
    (lambda d: d | {"tune_layers": ["3"]}, "tune_layers"),
    (lambda d: d | {"tune_layers": []}, "tune_layers"),
    (lambda d: d | {"n_scans": [0]}, "n_scans"),
    (lambda d: d | {"n_scans": ["most"]}, "n_scans"),
    (lambda d: d | {"draws": 0}, "draws"),
    (lambda d: d | {"draws": True}, "draws"),
    (lambda d: d | {"adapt": {"learning_rate": "fast"}}, "adapt.learning_rate"),
    (lambda d: d | {"adapt": {"epochs": -1}}, "adapt.epochs"),
    (lambda d: d | {"adapt": {"layers": 3}}, "layers"),
    (lambda d: d | {"first_layers": {"n_scans": [2]}}, "first_layers"),
    (lambda d: d | {"preprocess": {"n5": True}}, "preprocess"),
    (lambda d: d | {"name": ""}, "name"),
    (lambda d: d | {"max_test_cases": 0}, "max_test_cases"),
    (lambda d: {k: v for k, v in d.items() if k != "data"}, "data"),
    (lambda d: d | {"data": {**d["data"], "target_test": ""}}, "target_test"),
    (lambda d: d | {"data": {**d["data"], "test": "x.csv"}}, "test"),
    (_without_source, "source_model"),
]


@pytest.mark.parametrize(("mutate", "named"), BAD_CONFIGS)
def test_bad_config_is_refused_naming_the_key(mutate, named):
    data = mutate(copy.deepcopy(config_dict()))
    with pytest.raises(InputError, match=named) as raised:
        parse_config(data, "bad.json")
    assert "bad.json" in str(raised.value)


def test_config_file_with_broken_json_names_the_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"name": "x",\n "draws": }')
    with pytest.raises(InputError, match="line 2"):
        load_config(path)


def test_missing_config_file_lists_the_built_in_ones(tmp_path):
    with pytest.raises(InputError, match="tiny, small, full"):
        load_config(tmp_path / "nowhere.json")


def test_cached_cases_are_reused_and_remade_when_preprocessing_changes(phantom_root, tmp_path):
    cases = load_cases(phantom_root / "target_test" / "manifest.csv")
    first = prepare_cached(cases, PreprocessConfig(n4=False), tmp_path)
    stamps = sorted(p.stat().st_mtime_ns for p in tmp_path.glob("*.npz"))
    again = prepare_cached(cases, PreprocessConfig(n4=False), tmp_path)
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.glob("*.npz")) == stamps
    assert len(first) == len(again)
    assert all(np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
               for a, b in zip(first, again))
    assert again[0].spacing_xyz == first[0].spacing_xyz
    remade = prepare_cached(cases, PreprocessConfig(n4=False, clip=1.0), tmp_path)
    assert remade[0].image.max() <= 1.0 < first[0].image.max()


def test_a_cached_context_case_is_fed_to_the_network_as_it_was_prepared(phantom_root, tmp_path):
    cases = load_cases(phantom_root / "target_test" / "manifest.csv")[:1]
    config = PreprocessConfig(n4=False, context_slices=1)
    made = prepare_cached(cases, config, tmp_path)[0]
    cached = prepare_cached(cases, config, tmp_path)[0]
    spec = InputSpec.of(config)
    assert spec.size == 6 and cached.image.shape[0] == made.image.shape[0] == 2
    zs = np.arange(made.image.shape[1])
    np.testing.assert_array_equal(cached.network_input(spec, zs), made.network_input(spec, zs))


# --- the grid --------------------------------------------------------------------------------

def test_scratch_and_fine_tuned_runs_of_a_draw_share_scans_and_seed():
    config = parse_config(config_dict(draws=3, n_scans=[1, 2, "all"], tune_layers=[1, 3]))
    grid = build_grid(config, pool_size=5)
    for n in (1, 2):
        for draw in range(3):
            runs = [r for r in grid if r.n_scans == n and r.draw == draw and r.setting in (SCRATCH, FINETUNE)]
            assert len(runs) == 3 and len({(r.scan_indices, r.seed) for r in runs}) == 1
            assert len(runs[0].scan_indices) == n
    whole_pool = [r for r in grid if r.n_scans == 5]
    assert {r.draw for r in whole_pool} == {0}
    assert len({r.key for r in grid}) == len(grid)


def test_draws_pick_different_scans_and_growing_the_grid_keeps_them():
    small = build_grid(parse_config(config_dict(draws=3, n_scans=[2])), pool_size=10)
    large = build_grid(parse_config(config_dict(draws=3, n_scans=[2, 5])), pool_size=10)
    scans = {r.key: r.scan_indices for r in small}
    assert all(scans[r.key] == r.scan_indices for r in large if r.key in scans)
    assert len({r.scan_indices for r in small if r.setting == SCRATCH}) > 1


def test_more_scans_than_the_pool_holds_is_refused():
    with pytest.raises(InputError, match="pool holds 3"):
        build_grid(parse_config(config_dict(n_scans=[1, 5])), pool_size=3)


# --- end to end ------------------------------------------------------------------------------

def test_tiny_experiment_writes_one_row_per_run_with_all_metrics(finished):
    out, _ = finished
    rows = read_rows(out / "results.csv")
    settings = [(r["setting"], int(r["n_scans"]), int(r["tune_layers"])) for r in rows]
    assert (SOURCE, 0, 0) in settings and ("source_on_source_test", 0, 0) in settings
    assert sorted(s for s in settings if s[0] != SOURCE and s[1] > 0) == [
        ("finetune", 1, 1), ("finetune", 1, 15), ("finetune", 2, 1), ("finetune", 2, 15),
        ("finetune_first", 1, 1), ("scratch", 1, 15), ("scratch", 2, 15)]
    for row in rows:
        for column in ("dsc_mean", "dsc_median", "dsc_pooled", "recall_mean", "f1_mean"):
            assert 0.0 <= float(row[column]) <= 1.0, (row["setting"], column)
        assert float(row["wall_s"]) > 0 and row["device"] == "cpu"
    cases = read_rows(out / "cases.csv")
    assert len(cases) == sum(int(r["n_test"]) for r in rows)


def test_tiny_experiment_writes_a_report_and_two_png_figures(finished):
    out, written = finished
    assert [p.name for p in written] == ["report.md", "dice_vs_scans.png", "dice_vs_layers.png"]
    for figure in written[1:]:
        assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 5000
    report = written[0].read_text(encoding="utf-8")
    for heading in ("## The source model", "## Dice on the target test set vs the number of target scans N",
                    "## The rule for `--tune-layers auto`", "## Do the paper's findings hold here?",
                    "tuning the first K layers", "dice_vs_scans.png", "TUNE_LAYERS_BY_SCANS = ("):
        assert heading in report


def test_source_row_uses_the_trained_source_models_threshold(finished):
    out, _ = finished
    metadata = json.loads(__import__("safetensors").safe_open(
        str(out / "source_model.safetensors"), "pt").metadata()["wmhda"])
    source = next(r for r in read_rows(out / "results.csv") if r["setting"] == SOURCE)
    assert math.isclose(float(source["threshold"]), metadata["threshold"])


def test_interrupted_experiment_resumes_without_redoing_finished_runs(phantom_root, tmp_path):
    config = parse_config(config_dict(data={
        "source_model": "source.safetensors", "target_pool": "target_pool/manifest.csv",
        "target_test": "target_test/manifest.csv"}, first_layers={}))

    def kill_after_three_runs(event):
        if event.task == "runs" and event.done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, phantom_root, tmp_path, "cpu", progress=kill_after_three_runs)
    before = {row_key(r): r for r in read_rows(tmp_path / "results.csv")}
    assert len(before) == 3
    cache_times = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")}
    events = []
    run_experiment(config, phantom_root, tmp_path, "cpu", progress=events.append)
    after = {row_key(r): r for r in read_rows(tmp_path / "results.csv")}
    assert len(after) == len(build_grid(config, 3)) == 7
    assert all(after[key] == row for key, row in before.items())  # untouched, not rerun
    assert [e.total for e in events if e.task == "runs"][-1] == 4
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*.npz")} == cache_times


def test_a_grown_grid_runs_only_the_new_runs(phantom_root, tmp_path):
    data = config_dict(data={"source_model": "source.safetensors", "target_pool": "target_pool/manifest.csv",
                             "target_test": "target_test/manifest.csv"}, first_layers={},
                       n_scans=[1], tune_layers=[1])
    run_experiment(parse_config(data), phantom_root, tmp_path, "cpu")
    first = read_rows(tmp_path / "results.csv")
    events = []
    run_experiment(parse_config({**data, "tune_layers": [1, 3]}), phantom_root, tmp_path, "cpu",
                   progress=events.append)
    rows = read_rows(tmp_path / "results.csv")
    assert rows[:len(first)] == first and [row_key(r) for r in rows[len(first):]] == [(FINETUNE, 1, 3, 0)]
    assert [e.total for e in events if e.task == "runs"] == [1]


def test_another_recipe_in_the_same_results_folder_is_refused(phantom_root, finished):
    out, _ = finished
    changed = config_dict(adapt={**TINY_RECIPE, "learning_rate": 0.01})
    with pytest.raises(InputError, match="other data or recipes"):
        run_experiment(parse_config(changed), phantom_root, out, "cpu")


def test_another_source_model_at_the_same_path_is_refused_in_the_same_results_folder(phantom_root, tmp_path):
    model = tmp_path / "shipped.safetensors"
    model.write_bytes((phantom_root / "source.safetensors").read_bytes())
    data = config_dict(data={"source_model": str(model), "target_pool": "target_pool/manifest.csv",
                             "target_test": "target_test/manifest.csv"}, first_layers={},
                       n_scans=[1], tune_layers=[1])
    out = tmp_path / "results"
    run_experiment(parse_config(data), phantom_root, out, "cpu")
    torch.manual_seed(1)
    network = WMHNet()  # new weights, same file name
    save_model(model, network, build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source"}),
               overwrite=True)
    with pytest.raises(InputError, match="another source model file"):
        run_experiment(parse_config(data), phantom_root, out, "cpu")



def test_source_row_cuts_each_scan_where_the_source_models_per_scan_rule_says(phantom_root, tmp_path):
    recall = {}
    for name, intercept in (("low", 0.2), ("high", 0.99)):
        torch.manual_seed(0)
        network = WMHNet()
        metadata = build_metadata(network, PreprocessConfig(n4=False), 0.5, {"domain": "source"})
        metadata["scan_threshold"] = ScanThreshold(intercept, 0.0, core_probability=0.0, min_core_voxels=1,
                                                   low=0.2, high=0.99).to_dict()
        model = save_model(tmp_path / f"{name}.safetensors", network, metadata)
        data = config_dict(data={"source_model": str(model), "target_pool": "target_pool/manifest.csv",
                                 "target_test": "target_test/manifest.csv"}, first_layers={},
                           n_scans=[1], tune_layers=[1])
        run_experiment(parse_config(data), phantom_root, tmp_path / name, "cpu")
        source = next(r for r in read_rows(tmp_path / name / "results.csv") if r["setting"] == SOURCE)
        recall[name] = float(source["recall_mean"])
    assert recall["low"] > recall["high"]

# --- conclusions from the table ----------------------------------------------------------------

def _row(setting, n, k, dice, draw=0, test_set="target_test"):
    return {"setting": setting, "n_scans": str(n), "tune_layers": str(k), "draw": str(draw),
            "test_set": test_set, "dsc_mean": str(dice), "dsc_median": str(dice), "dsc_pooled": str(dice),
            "wall_s": "1", "n_test": "20"}


def paper_like_rows():
    """Source drops; transfer wins at N=1 by a lot, at N=10 barely; best K 1 -> 3 -> 15."""
    rows = [_row(SOURCE, 0, 0, 0.2), _row("source_on_source_test", 0, 0, 0.75, test_set="source_test")]
    table = {1: (0.1, {1: 0.5, 3: 0.45, 15: 0.3}), 3: (0.4, {1: 0.55, 3: 0.6, 15: 0.5}),
             10: (0.68, {1: 0.6, 3: 0.65, 15: 0.7})}
    for n, (scratch, by_k) in table.items():
        rows.append(_row(SCRATCH, n, 15, scratch))
        rows += [_row(FINETUNE, n, k, dice) for k, dice in by_k.items()]
    rows += [_row("finetune_first", 3, 1, 0.4), _row("finetune_first", 3, 3, 0.45)]
    return rows


def test_findings_hold_on_a_table_shaped_like_the_papers():
    verdicts = [f.verdict for f in all_findings(summarize_rows(paper_like_rows()))]
    assert verdicts == [HOLDS, HOLDS, HOLDS, HOLDS, "last layers better"]


def test_findings_fail_on_a_table_shaped_against_the_paper():
    rows = [_row(SOURCE, 0, 0, 0.7), _row("source_on_source_test", 0, 0, 0.72, test_set="source_test")]
    for n in (1, 3, 10):
        rows += [_row(SCRATCH, n, 15, 0.8), _row(FINETUNE, n, 1, 0.5), _row(FINETUNE, n, 15, 0.6)]
    verdicts = [f.verdict for f in all_findings(summarize_rows(rows))]
    assert verdicts[:4] == ["holds partly", FAILS, FAILS, FAILS]


def test_findings_of_a_half_finished_grid_say_what_cannot_be_told_yet():
    rows = [_row(SOURCE, 0, 0, 0.3), _row(FINETUNE, 1, 1, 0.5), _row(FINETUNE, 2, 15, 0.6)]
    findings = all_findings(summarize_rows(rows))
    assert [f.verdict for f in findings] == ["cannot tell"] * 2 + [HOLDS, "cannot tell", "cannot tell"]


def test_proposed_rule_follows_the_measured_best_layers_and_never_decreases():
    assert proposed_table([(1, 1), (3, 3), (10, 15)]) == ((1, 1), (3, 3), (10**9, 15))
    assert proposed_table([(1, 3), (2, 1), (5, 8), (20, 8)]) == ((2, 3), (10**9, 8))


# --- command line ----------------------------------------------------------------------------

def test_built_in_config_without_data_folder_exits_with_a_usage_error(tmp_path, capsys):
    assert main(["experiment", "--config", "small", "--out", str(tmp_path / "r")]) == 2
    assert "--data" in capsys.readouterr().err


def test_source_model_option_replaces_source_training_and_test_sets_can_be_capped(phantom_root, tmp_path):
    config = tmp_path / "capped.json"
    data = config_dict(n_scans=[1], tune_layers=[1], first_layers={}, max_test_cases=1)
    config.write_text(json.dumps(data))
    out = tmp_path / "out"
    assert main(["experiment", "--config", str(config), "--data", str(phantom_root), "--out", str(out),
                 "--device", "cpu", "--source-model", str(phantom_root / "source.safetensors")]) == 0
    rows = read_rows(out / "results.csv")
    assert not (out / "source_model.safetensors").exists()
    assert {r["n_test"] for r in rows} == {"1"} and len(rows) == 4


def test_report_only_rebuilds_the_report_from_the_table(finished, capsys):
    out, written = finished
    written[0].unlink()
    assert main(["experiment", "--config", "tiny", "--out", str(out), "--report-only"]) == 0
    assert (out / "report.md").is_file() and "report.md" in capsys.readouterr().out
