"""Each kind owns its config section, its results columns, its reporter, its summary lines
and its run name; config.yaml holds the kind's section and nothing of other kinds."""

from __future__ import annotations

import pytest

from neuroprune.config import (KIND_SECTIONS, changed_keys, load_config, method_params,
                               saved_tree, to_dict)
from neuroprune.errors import ConfigError
from neuroprune.report import REPORTERS
from neuroprune.searches.kinds import Kind
from neuroprune.searches.registry import KINDS


@pytest.mark.parametrize("name", list(KINDS))
def test_every_kind_owns_its_section_columns_reporter_lines_and_run_name(name):
    cls = KINDS.load(name)
    assert issubclass(cls, Kind) and cls.name == name
    assert (cls.section is None) == (cls.Config is None)
    if cls.section is not None:
        assert cls.section in KIND_SECTIONS
        undocumented = [k for k, f in cls.Config.model_fields.items() if not f.description]
        assert not undocumented, f"{name}: {undocumented}"
    assert cls.columns and all(isinstance(c, str) for c in cls.columns)
    assert callable(REPORTERS.load(name)) and REPORTERS[name].target == cls.reporter
    assert cls.lines is not Kind.lines or cls.lines(None, {}, "out") == ["run directory: out"]
    cfg = load_config("quickstart", [f"kind={name}", "training.privacy=null"]) \
        if name != "private_training" else None
    if cfg is not None:
        assert cls.run_name(cfg).startswith(cfg.name)


def test_every_section_of_a_kind_belongs_to_one_kind():
    owners = [KINDS.load(n).section for n in KINDS if KINDS.load(n).section is not None]
    assert sorted(owners) == sorted(KIND_SECTIONS)


def test_the_kind_classes_and_sections_are_found_where_they_used_to_be():
    from neuroprune.config import ComparisonConfig, NeuroevolutionConfig
    from neuroprune.searches import kinds

    assert kinds.MaskSearchKind is KINDS.load("mask_search")
    assert ComparisonConfig is KINDS.load("comparison").Config
    assert NeuroevolutionConfig is KINDS.load("neuroevolution").Config


def test_config_yaml_of_a_mask_search_holds_no_other_kind_and_the_method_defaults():
    cfg = load_config("quickstart")
    tree = to_dict(cfg)
    assert not set(KIND_SECTIONS) & set(tree)
    defaults = method_params(cfg.method).model_dump(mode="json")
    assert tree["method"] == {"name": cfg.method.name, **defaults}
    assert cfg.activation is None and cfg.comparison is None
    # and the zoo model with its options' defaults (quickstart sets widths only)
    assert tree["model"] == {"name": "mlp", "factory": None, "kwargs": {}, "weights": None,
                             "widths": [300, 100], "activation": "relu", "dropout": 0.0,
                             "init": "default"}
    # written and read back: the same tree, nothing "changed" on resume, and the same model
    again = load_config(tree=tree)
    assert changed_keys(tree, to_dict(again)) == []
    shape, classes = (64,), 10
    assert again.model.spec(shape, classes) == cfg.model.spec(shape, classes)
    assert again.model.spec(shape, classes).options == {}  # widths given = its default
    wider = load_config("quickstart", ["model.widths=[64]", "model.dropout=0.5"])
    assert wider.model.spec(shape, classes).options == {"widths": (64,), "dropout": 0.5}


def test_a_dataset_owns_its_options_and_config_yaml_writes_their_defaults():
    tree = to_dict(load_config("quickstart", ["data.dataset=blobs", "data.samples=500"]))
    assert {k: tree["data"][k] for k in ("samples", "features", "classes")} == \
        {"samples": 500, "features": 20, "classes": 10}
    assert "protocol" not in tree["data"] and "path" not in tree["data"]
    mnist = to_dict(load_config("quickstart", ["data.dataset=mnist", "data.root=x"]))["data"]
    assert mnist["protocol"] == "auto" and "samples" not in mnist
    with pytest.raises(ConfigError) as err:
        load_config("quickstart", ["data.sampels=500"])
    assert str(err.value) == ("data.sampels: dataset digits has no option 'sampels' (it takes "
                              "no options of its own); drop it or choose a dataset that "
                              "takes it")
    # a config of another dataset switched to this one: that dataset's options are dropped,
    # saying so (an MNIST config run on digits)
    with pytest.warns(UserWarning, match="data.protocol is an option of mnist, fashion_mnist, "
                                         "kmnist, usps; dataset digits does not use it"):
        switched = load_config("quickstart", ["data.protocol=10k"])
    assert "protocol" not in to_dict(switched)["data"]
    with pytest.warns(UserWarning, match="data.samples is an option of blobs, images, "
                                         "multilabel"):
        load_config("quickstart", ["data.samples=500"])
    with pytest.raises(ConfigError, match="data.samples: Input should be greater than or "
                                          "equal to 30 for dataset blobs"):
        load_config("quickstart", ["data.dataset=blobs", "data.samples=3"])
    with pytest.warns(UserWarning, match="data.image_size is an option of images, folder; "
                                         "dataset blobs does not use it"):
        load_config("quickstart", ["data.dataset=blobs", "data.image_size=16"])


@pytest.mark.parametrize("kind,section", [("comparison", "comparison"),
                                          ("activation_search", "activation"),
                                          ("ensemble_search", "ensemble"),
                                          ("planted", "planted"),
                                          ("rbm_connectivity", "rbm"),
                                          ("neuroevolution", "neuroevolution")])
def test_a_kind_gets_its_own_section_with_defaults_and_only_that(kind, section):
    cfg = load_config("quickstart", [f"kind={kind}"])
    own = getattr(cfg, section)
    assert own == KINDS.load(kind).Config()
    tree = to_dict(cfg)
    assert tree[section] == own.model_dump(mode="json")
    assert not (set(KIND_SECTIONS) - {section}) & set(tree)


def test_a_section_of_another_kind_that_sets_something_is_refused_in_one_line():
    with pytest.raises(ConfigError) as err:
        load_config("quickstart", ["activation.population=3"])
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == ("activation: is the section of kind activation_search; this config is kind "
                   "mask_search: drop the section or set kind=activation_search")
    with pytest.raises(ConfigError, match="activation.populatio'"):
        load_config("quickstart", ["kind=activation_search", "activation.populatio=3"])
    with pytest.raises(ConfigError, match="'comparison.sparsities'"):
        load_config("quickstart", ["kind=comparison", "comparison.sparsities=[2]"])


def _old_format(tree_of):
    """A config.yaml tree as earlier versions wrote it: every kind's section with its
    defaults (`comparison: null` outside comparisons), the method without its defaults."""
    cfg = load_config("quickstart", [f"kind={tree_of}"])
    tree = to_dict(cfg)
    for name in KINDS:
        cls = KINDS.load(name)
        if cls.section is not None and cls.section not in tree:
            tree[cls.section] = None if cls.section == "comparison" else \
                cls.Config().model_dump(mode="json")
    tree["method"] = {"name": cfg.method.name, **(cfg.method.model_extra or {})}
    # every dataset's options, at their defaults then, whatever the dataset
    from neuroprune.data.options import LEGACY
    tree["data"] = {**tree["data"], **LEGACY}
    tree["model"] = {k: v for k, v in tree["model"].items() if k != "dropout"}  # no defaults
    return tree, to_dict(cfg)


@pytest.mark.parametrize("kind", ["mask_search", "comparison", "activation_search"])
def test_a_config_yaml_of_an_earlier_version_loads_and_resumes_unchanged(kind):
    old, new = _old_format(kind)
    cfg = load_config(tree=old)
    assert cfg.kind == kind
    assert changed_keys(to_dict(cfg), new) == []
    assert changed_keys(saved_tree(old), new) == []  # what `run --resume` compares


def test_a_run_whose_config_yaml_an_earlier_version_wrote_resumes(tmp_path):
    import yaml

    from neuroprune.cli import main
    from neuroprune.rundir import RunDir

    out = tmp_path / "run"
    assert main(["run", "quickstart", "--out", str(out), "--set", "method.population=3",
                 "--set", "method.generations=1", "--set", "training.epochs=1", "--set",
                 "model.widths=[16]", "--no-progress", "--device", "cpu"]) == 0
    written = yaml.safe_load((out / "config.yaml").read_text())
    assert not set(KIND_SECTIONS) & set(written)
    old = dict(written)
    for name in KINDS:
        cls = KINDS.load(name)
        if cls.section is not None:
            old[cls.section] = None if cls.section == "comparison" else \
                cls.Config().model_dump(mode="json")
    old["method"] = {"name": "kstarts", "population": 3, "generations": 1}
    (out / "config.yaml").write_text(yaml.safe_dump(old, sort_keys=False))
    (out / "summary.json").unlink()  # as an interrupted run leaves it
    assert main(["run", str(out / "config.yaml"), "--resume", str(out), "--no-progress"]) == 0
    assert RunDir(out).is_complete()
