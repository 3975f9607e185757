"""The README is a front door: two set-up commands that CI runs, short sections linking to docs/."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def setup_commands():
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_readme_opens_with_exactly_two_setup_commands():
    commands = setup_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert "plasticity run" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim():
    lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert setup_commands()[1] in lines


def test_the_test_command_says_how_long_it_takes_and_shows_progress_per_file():
    section = README.split("## Set up", 1)[1].split("\n## ", 1)[0]
    before_test_command = section.split(setup_commands()[1])[0].rsplit("```bash", 1)[0]
    assert re.search(r"about \d+ minutes", before_test_command)
    assert " -q" not in setup_commands()[1]  # pytest's default output: a line per test file


def test_the_readme_is_short_with_concepts_and_layout_near_the_top():
    assert len(README.encode()) < 15_000
    headings = re.findall(r"^## (.+)$", README, flags=re.M)
    assert headings[:5] == ["Set up", "A rule in twenty lines", "Concepts", "Layout", "Models and protocols"]
    for concept in ("Equations", "Rules", "Networks", "Protocols", "Sweeps", "Figures"):
        assert f"- **{concept}" in README
    assert "samples/s" not in README and "GB/s" not in README  # benchmark figures live in benchmarks/


def test_every_relative_link_of_the_readme_and_docs_exists():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_the_readme_example_file_exists():
    for example in ("examples/pca.toml", "examples/oja_script.py"):
        assert (ROOT / example).is_file()
