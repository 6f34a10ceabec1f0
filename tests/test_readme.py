import re
import sys
import types

from helpers import REPO

DOCS = REPO / "docs"


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


def test_readme_is_short_and_every_topic_has_its_page():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) < 300
    for heading in ("## Quick start", "## Using it", "## What it runs", "## Methods",
                    "## Documentation", "## Development"):
        assert heading in readme, heading
    pages = {"## Methods": "guide/mask_search.md", "## Config reference": "config.md",
             "## Tuning with Optuna": "tuning.md", "## Running on a Ray cluster": "cluster.md",
             "## Evolving activation functions": "guide/activation_search.md",
             "## Evolving classifier ensembles": "guide/ensemble_search.md",
             "## Planted tickets": "guide/planted.md", "## Benchmarks": "benchmarks.md",
             "## Determinism": "design.md", "## Development": "development.md",
             "## Security": "security.md", "## Extending": "extending.md"}
    for topic, page in pages.items():
        assert (DOCS / page).is_file(), page
        assert f"(docs/{page})" in readme, f"README does not link {page} ({topic})"
    from neuroprune.searches.registry import KINDS
    for kind in KINDS:  # every kind has its guide, linked from the README
        assert f"(docs/guide/{kind}.md)" in readme, kind
        assert (DOCS / "guide" / f"{kind}.md").is_file(), kind


def _slug(heading: str) -> str:
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_relative_link_of_readme_and_docs_resolves():
    files = [REPO / "README.md", *sorted(DOCS.rglob("*.md"))]
    broken = []
    for md in files:
        text = re.sub(r"```.*?```", "", md.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://|mailto:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (md.parent / path).resolve() if path else md
            if not dest.exists():
                broken.append(f"{md.relative_to(REPO)}: {target}")
            elif anchor and dest.suffix == ".md":
                slugs = {_slug(h) for h in re.findall(r"^#+ (.+)$", dest.read_text(), re.M)}
                if anchor not in slugs:
                    broken.append(f"{md.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, broken


def test_the_reference_pages_match_the_code():
    from neuroprune.reference import stale_pages
    assert stale_pages(DOCS) == [], ("docs/ is out of date: run "
                                     "`python -m neuroprune.reference docs`")
    methods = (DOCS / "methods.md").read_text()
    assert "## kstarts" in methods and "`method.population`" in methods
    config = (DOCS / "config.md").read_text()
    assert "`sparsity.target`" in config and "`data.dataset`" in config


def test_the_readme_python_example_runs(tmp_path, monkeypatch):
    readme = (REPO / "README.md").read_text()
    code = readme.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code.replace("epochs=5", "epochs=1"), "README.md", "exec"), scope)
    result, model, X = scope["result"], scope["model"], scope["X"]
    assert abs(result.summary["sparsity"] - 0.9) < 0.01
    assert (model(X[:8]).argmax(1) == result.model(X[:8]).argmax(1)).all()


def test_the_extending_example_method_runs(monkeypatch):
    from neuroprune.methods import METHODS
    text = (DOCS / "extending.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    source = blocks[0].replace("from ..masks", "from neuroprune.masks").replace(
        "from .base", "from neuroprune.methods.base")
    module = types.ModuleType("docs_method_example")
    exec(compile(source, "docs/extending.md", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    METHODS.add("my_random", f"{module.__name__}:MyRandom")
    try:
        scope: dict = {}
        exec(compile(blocks[1], "docs/extending.md", "exec"), scope)
        assert int(scope["result"].bits.sum()) == scope["ctx"].layout.kept
    finally:
        METHODS._entries.pop("my_random", None)
        METHODS._loaded.pop("my_random", None)
