"""The wheel installs rules/, networks/ and analysis/ only inside the plasticity namespace."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_maps_top_level_folders_into_the_plasticity_namespace(tmp_path):
    # build from a copy of the sources, so no stale build/ folder can add or hide files
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("plasticity", "rules", "networks", "analysis"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.zarr"))
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(source)],
        check=True, capture_output=True, text=True,
    )
    (wheel,) = tmp_path.glob("plasticity-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level <= {"plasticity"} | {name.split("/")[0] for name in names if ".dist-info/" in name}
    for folder in ("rules", "networks", "analysis"):
        assert f"plasticity/{folder}/__init__.py" in names
        assert not any(name.startswith(f"{folder}/") for name in names)
    for module in ("plasticity/rules/component_analysis.py", "plasticity/networks/pca.py",
                   "plasticity/analysis/alignment.py", "plasticity/equations/parser.py",
                   "plasticity/backends/numpy_backend.py"):
        assert module in names
    # every python module in the source folders made it into the wheel
    for folder, package in (("plasticity", "plasticity"), ("rules", "plasticity/rules"),
                            ("networks", "plasticity/networks"), ("analysis", "plasticity/analysis")):
        for source in (ROOT / folder).rglob("*.py"):
            relative = source.relative_to(ROOT / folder).as_posix()
            assert f"{package}/{relative}" in names, f"{folder}/{relative} is missing from the wheel"


def test_the_namespace_imports():
    import plasticity
    import plasticity.analysis
    import plasticity.networks
    import plasticity.rules

    assert plasticity.rules.__name__ == "plasticity.rules"
    assert "oja" in plasticity.rules.list_rules()
    assert "pca" in plasticity.list_protocols()
