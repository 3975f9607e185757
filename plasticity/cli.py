"""The ``plasticity`` command: run, sweep, show, export, figures, info, rules.

Every verb returns an exit status: 0 on success, 1 when a sweep finished with
failed points, 2 for an error the user can fix (the message says how), 130
when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
from typing import Iterator

from plasticity.errors import PlasticityError

__all__ = ["main", "build_parser"]


@contextlib.contextmanager
def _current_directory_importable() -> Iterator[None]:
    """The current directory on ``sys.path`` for the duration, as for ``python -m``: a protocol
    named ``module:function`` may live there. Only then: a ``zarr.py`` in the directory where the
    user types ``plasticity show`` must not run."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def _experiment(args: argparse.Namespace):
    from plasticity.experiment import load_experiment

    overrides = list(args.set or [])
    if args.backend is not None:
        overrides.append(f"backend={args.backend}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    with _current_directory_importable():  # resolves (imports) the experiment's protocol
        return load_experiment(args.file, overrides)


def _run(args: argparse.Namespace) -> int:
    from plasticity.protocols import run_protocol
    from plasticity.storage import write_run

    experiment = _experiment(args)
    if experiment.has_sweep:
        raise PlasticityError(
            f"{args.file} has a [sweep] table; run it with: plasticity sweep {args.file} -o STORE.zarr"
        )
    dataset = run_protocol(
        experiment.protocol, experiment.params, backend=experiment.backend, seed=experiment.seed,
        dtype=experiment.dtype, device=experiment.device,
    )
    dataset.attrs["experiment_toml"] = experiment.to_toml()
    write_run(dataset, args.output)
    print(f"wrote {args.output} ({float(dataset.attrs['wall_time_s']):.2f} s)")
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from plasticity.sweep import run_sweep

    experiment = _experiment(args)
    # The imports' objects (numba, xarray, pandas: most of the process's) are kept for good: the
    # collections the store's writes set off while points run no longer traverse them.
    gc.freeze()
    summary = run_sweep(
        experiment, args.output, resume=args.resume, workers=args.workers, scheduler=args.scheduler,
        progress=not args.quiet,
    )
    print(summary)
    return 1 if summary.failed else 0


def _search(args: argparse.Namespace) -> int:
    from plasticity.search.runner import format_ranking, load_search, search

    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    config = load_search(args.file, overrides)
    result = search(config, args.output, resume=args.resume, workers=args.workers, scheduler=args.scheduler,
                    force=args.force, progress=not args.quiet)
    print(result)
    print(format_ranking(result.ranking, config.top))
    return 1 if result.failed_batches else 0


def _show(args: argparse.Namespace) -> int:
    from plasticity.storage import describe_store, verify_store

    verified = verify_store(args.store) if args.verify else None
    print(describe_store(args.store, verified=verified))
    return 1 if verified is not None and verified[0] else 0


def _export(args: argparse.Namespace) -> int:
    from plasticity.storage import export_netcdf

    print(f"wrote {export_netcdf(args.store, args.output)}")
    return 0


def _figures(args: argparse.Namespace) -> int:
    from plasticity.figures import describe_figures, redraw

    if args.name is None:
        print(describe_figures(args.figures_dir))
        return 0
    paths = redraw(args.name, root=args.figures_dir, outdir=args.output, rerun=args.rerun,
                   make_missing=args.make_missing, workers=args.workers)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from plasticity.info import facts, format_fact

    for name, value in facts():  # each as it is found: the backend probes take seconds
        print(format_fact(name, value), flush=True)
    return 0


def _rules(args: argparse.Namespace) -> int:
    from plasticity.rules import describe_rule, list_rules

    if args.name is not None:
        print(describe_rule(args.name))
        return 0
    print("\n\n".join(describe_rule(name) for name in sorted(list_rules())))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``plasticity`` command."""
    parser = argparse.ArgumentParser(
        prog="plasticity", description="Simulate biologically plausible learning rules; sweep, store and plot runs."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    def experiment_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("file", help="experiment TOML file")
        sub.add_argument("-o", "--output", required=True, help="the Zarr store to write")
        sub.add_argument("--set", action="append", metavar="KEY=VALUE",
                         help="override a value, e.g. params.eta=0.01 (VALUE is TOML; repeatable)")
        sub.add_argument("--backend", help="override the backend (numpy, numba, torch)")
        sub.add_argument("--seed", type=int, help="override the root seed")

    run = verbs.add_parser("run", help="run one experiment into a Zarr store")
    experiment_options(run)
    run.set_defaults(handler=_run)

    sweep = verbs.add_parser("sweep", help="run an experiment's [sweep] grid into one resumable Zarr store")
    experiment_options(sweep)
    sweep.add_argument("--resume", action="store_true", help="continue an interrupted sweep in the same store")
    sweep.add_argument("--workers", type=int,
                       help="points run at once (default: the number of cores; 0 or 1: one at a time): on "
                            "threads of this process for protocols declared for threads, else on this process and "
                            "worker processes that start when the points left are worth it")
    sweep.add_argument("--scheduler", metavar="ADDRESS", help="an existing dask scheduler, e.g. tcp://host:8786")
    sweep.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_sweep)

    search = verbs.add_parser("search", help="enumerate small rules of + - * over local terms, score and rank them")
    search.add_argument("file", help="search TOML file (task, [grammar], [params], [search])")
    search.add_argument("-o", "--output", required=True, help="the Zarr store to write (its 'ranking' group holds the table)")
    search.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="override a value, e.g. grammar.max_operations=3 (VALUE is TOML; repeatable)")
    search.add_argument("--seed", type=int, help="override the root seed")
    search.add_argument("--resume", action="store_true", help="continue an interrupted search in the same store")
    search.add_argument("--force", action="store_true", help="enumerate a grammar that yields more rules than its limit")
    search.add_argument("--workers", type=int,
                        help="processes that run batches, this one included (default: the number of cores; "
                             "0 or 1: this process alone), as for sweep")
    search.add_argument("--scheduler", metavar="ADDRESS", help="an existing dask scheduler, e.g. tcp://host:8786")
    search.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    search.set_defaults(handler=_search)

    show = verbs.add_parser("show", help="dimensions, variables, completion and provenance of a store")
    show.add_argument("store")
    show.add_argument("--verify", action="store_true",
                      help="read every point back and check it against its checksum (exit status 1 if damaged)")
    show.set_defaults(handler=_show)

    export = verbs.add_parser("export", help="write a store to netCDF")
    export.add_argument("store")
    export.add_argument("output", help="the netCDF file to write")
    export.set_defaults(handler=_export)

    figures = verbs.add_parser("figures", help="list the figures, or redraw one from its saved stores")
    figures.add_argument("name", nargs="?", help="the figure (a folder under the figures directory)")
    figures.add_argument("-o", "--output", help="where to write the images (default: the figure's folder)")
    figures.add_argument("--rerun", action="store_true", help="recompute every store of the figure first")
    figures.add_argument("--make-missing", action="store_true",
                         help="compute the stores that do not exist yet first, with progress")
    figures.add_argument("--workers", type=int,
                         help="processes that run the points of the sweeps it computes, this one included")
    figures.add_argument("--figures-dir", default="figures", help="the figures directory (default: ./figures)")
    figures.set_defaults(handler=_figures)

    info = verbs.add_parser("info", help="versions, backends, BLAS, threading layer, cache directory, GPUs")
    info.set_defaults(handler=_info)

    rules = verbs.add_parser("rules", help="list the built-in rules, or show one")
    rules.add_argument("name", nargs="?")
    rules.set_defaults(handler=_rules)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``plasticity`` command with ``argv`` (default: the process's arguments)."""
    args = build_parser().parse_args(argv)
    try:
        status = args.handler(args)
        sys.stdout.flush()  # here, where a closed pipe is caught below, not at exit
        return status
    except PlasticityError as error:
        print(f"plasticity {args.verb}: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader stopped early (``plasticity show STORE | head``): not an error. Point stdout at
        # /dev/null so that flushing it at exit does not report the closed pipe again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        hint = "; the store keeps the finished points: run the same command with --resume" if args.verb == "sweep" else ""
        print(f"plasticity {args.verb}: interrupted{hint}", file=sys.stderr)
        return 130


def console() -> int:
    """The ``plasticity`` command as a process: :func:`main`, then every object made so far moved out
    of the garbage collector's reach (``gc.freeze``). The interpreter's collections at exit
    otherwise traverse all that the imports made (numba, xarray, pandas), about 0.9 s on every
    command; nothing of the command's is left to finalize then (stores are written and closed)."""
    status = main()
    gc.freeze()
    return status


if __name__ == "__main__":
    sys.exit(console())
