from helpers import REPO


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    block = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.strip().splitlines() if line.strip()]
    assert len(commands) == 2, "the quick start is exactly two commands"
    assert commands[0].endswith("neuroprune run configs/quickstart.yaml")
    assert commands[1] in ci.splitlines()


def test_readme_lists_every_method_and_dataset():
    from neuroprune.data import DATASETS
    from neuroprune.methods import METHODS
    readme = (REPO / "README.md").read_text()
    for name in list(DATASETS) + list(METHODS):
        assert f"`{name}`" in readme, name


def test_every_shipped_config_validates():
    from neuroprune.config import load_config
    for path in sorted((REPO / "configs").glob("*.yaml")):
        load_config(path)


def test_readme_keeps_a_section_for_every_search_and_tool():
    readme = (REPO / "README.md").read_text()
    for heading in ("## Quick start", "## Methods", "## Config reference", "## Tuning with Optuna",
                    "## Running on a Ray cluster", "## Evolving activation functions",
                    "## Evolving classifier ensembles", "## Planted tickets",
                    "## Benchmarks", "## Determinism", "## Development"):
        assert heading in readme, heading
