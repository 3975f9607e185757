"""The plasticity command: every verb, exit statuses and error messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import xarray as xr

from plasticity.cli import main

RUN = """
protocol = "sweep_protocols:noisy_mean"
backend = "numpy"
seed = 3
[params]
n = 4
"""


@pytest.fixture
def toml(tmp_path):
    path = tmp_path / "e.toml"
    path.write_text(RUN)
    return path


def test_run_writes_a_store_with_overrides(toml, tmp_path, capsys):
    out = tmp_path / "out.zarr"
    assert main(["run", str(toml), "-o", str(out), "--set", "params.n=6", "--set", "params.mu=2.5",
                 "--seed", "8"]) == 0
    assert "wrote" in capsys.readouterr().out
    store = xr.open_zarr(out)
    assert store.sizes["sample"] == 6 and store.attrs["seed"] == "8"
    assert '"mu": 2.5' in store.attrs["params"] and "mu = 2.5" in store.attrs["experiment_toml"]


def test_run_errors_are_clear_and_exit_2(toml, tmp_path, capsys):
    out = str(tmp_path / "out.zarr")
    assert main(["run", str(toml), "-o", out, "--set", "params.bogus=1"]) == 2
    assert "has no parameter 'bogus'; valid parameters: delay, mu, n, scale" in capsys.readouterr().err
    assert main(["run", str(toml), "-o", out, "--backend", "fortran"]) == 2
    assert "backend must be one of numpy, numba, torch" in capsys.readouterr().err
    sweep = tmp_path / "s.toml"
    sweep.write_text(RUN + "[sweep]\nmu = [0, 1]\n")
    assert main(["run", str(sweep), "-o", out]) == 2
    assert "has a [sweep] table; run it with: plasticity sweep" in capsys.readouterr().err


def test_sweep_show_export(tmp_path, capsys):
    toml = tmp_path / "g.toml"
    toml.write_text('protocol = "sweep_protocols:gated"\nbackend = "numpy"\n[sweep]\nx = [0, 1, 2]\n')
    store, nc = tmp_path / "g.zarr", tmp_path / "g.nc"
    assert main(["sweep", str(toml), "-o", str(store), "--workers", "0", "-q"]) == 1  # a point failed
    out = capsys.readouterr().out
    assert "2 of 3 points done" in out and "failed point 1 (x=1, repeat=0)" in out and "--resume" in out
    assert main(["sweep", str(toml), "-o", str(store), "--workers", "0"]) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert main(["show", str(store)]) == 0
    assert "completion: 2 of 3 points done, 1 failed" in capsys.readouterr().out
    assert main(["export", str(store), str(nc)]) == 0
    assert xr.open_dataset(nc, engine="h5netcdf").sizes["x"] == 3
    assert main(["show", str(tmp_path / "missing.zarr")]) == 2
    assert "is not a Zarr store" in capsys.readouterr().err


def test_figures_listing_and_missing_directory(tmp_path, capsys):
    assert main(["figures", "--figures-dir", str(tmp_path / "none")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_info_and_rules(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "numba threading layer:" in out and "backends available:" in out and "GPUs:" in out
    assert "OpenMP wait:" in out
    assert "kernel cache directory:" in out
    assert main(["rules", "oja"]) == 0
    assert "w += eta * y_post * (x_pre - y_post * w)" in capsys.readouterr().out
    assert main(["rules"]) == 0
    listing = capsys.readouterr().out
    assert "oja" in listing and "sanger" in listing and "cost per synapse per step" in listing
    assert main(["rules", "nope"]) == 2
    assert "unknown rule 'nope'" in capsys.readouterr().err


def test_console_script_help():
    result = subprocess.run([sys.executable, "-m", "plasticity.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    for verb in ("run", "sweep", "show", "export", "figures", "info", "rules"):
        assert verb in result.stdout


def test_console_returns_the_status_and_freezes_what_exists(monkeypatch):
    """The console script skips the interpreter's collections of the import-time objects at exit."""
    import gc

    import plasticity.cli as cli

    monkeypatch.setattr(cli, "main", lambda: 3)
    try:
        assert cli.console() == 3
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


PROTOCOL_MODULE = '''
import xarray as xr

def constant(*, value: float = 1.0, backend="numpy", seed=0, dtype="float32", device=None):
    return xr.Dataset({"value": ((), value)})
'''


def test_the_current_directory_is_importable_only_while_resolving_the_protocol(tmp_path, monkeypatch, capsys):
    (tmp_path / "cwd_protocols.py").write_text(PROTOCOL_MODULE)
    (tmp_path / "e.toml").write_text('protocol = "cwd_protocols:constant"\nbackend = "numpy"\n[params]\nvalue = 2.5\n')
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    assert main(["run", "e.toml", "-o", "out.zarr"]) == 0
    assert sys.path == before
    assert float(xr.open_zarr(tmp_path / "out.zarr")["value"]) == 2.5


def test_a_module_in_the_current_directory_does_not_run_on_show(tmp_path, capsys):
    script = Path(sys.executable).with_name("plasticity")
    if not script.exists():
        pytest.skip("the plasticity console script is not installed beside this Python")
    store = tmp_path / "s.zarr"
    main(["run", str(_toml(tmp_path)), "-o", str(store)])
    marker = tmp_path / "ran"
    (tmp_path / "zarr.py").write_text(f"open({str(marker)!r}, 'w').close()\nraise SystemExit('shadowed zarr ran')\n")
    result = subprocess.run([str(script), "show", str(store)], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not marker.exists() and "noisy_mean" in result.stdout


def _toml(folder):
    path = folder / "run.toml"
    path.write_text(RUN)
    return path


def test_a_reader_that_stops_early_gets_no_broken_pipe_traceback():
    process = subprocess.Popen([sys.executable, "-m", "plasticity.cli", "rules"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    process.stdout.close()  # as `plasticity rules | head -0` does: every write finds the pipe closed
    error = process.stderr.read()
    process.stderr.close()
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in error and "BrokenPipeError" not in error, error


def test_rules_count_costs_in_singular_and_plural(capsys):
    assert main(["rules", "hebb"]) == 0
    assert "cost per synapse per step: 2 adds, 2 multiplies, 1 read, 1 write" in capsys.readouterr().out
