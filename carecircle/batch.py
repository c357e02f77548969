"""Batch runs: many districts, or one region in tiles, as tasks on dask.distributed.

A batch file lists runs::

    runs:                                   # relative paths resolve against this file's folder
      - {name: 新吴区, config: xinwu/run.yaml}
      - {name: 梁溪区, config: liangxi/run.yaml, overrides: {walk: {minutes: 10}}}

or names one config split into tiles (see :mod:`carecircle.tiles`)::

    config: city/run.yaml
    tiles: {by: streets}                    # one tile per 街道; or {grid_m: 5000}

Every task is an ordinary :func:`carecircle.pipeline.run` into ``OUT/<name>/`` (the same
safety rules: a folder appears only once complete), so a failed task is re-run alone and a
finished one is recognised by its completed ``summary.json``. The batch goes on past a
failed task, reports its name and one-line error, and the province-level outputs
(:mod:`carecircle.merge`) are built from the tasks that finished.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from carecircle.errors import InputError

Log = Callable[[str], None]

#: Folder names the merged outputs use, so no run may take them.
RESERVED_NAMES = {"shp"}
#: The batch's own record of its tasks (name, fingerprint, status, error) in ``OUT``.
STATE_FILE = "batch.json"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunEntry(_Section):
    """One run of a batch: a name (its output folder), a run config and overrides of its keys."""

    name: str
    config: Path
    overrides: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _folder_name(self) -> "RunEntry":
        _check_name(self.name)
        return self


class TileSpec(_Section):
    """How to split one config: ``by: streets`` (one tile per 街道) or ``grid_m`` (square cells)."""

    by: str | None = None
    grid_m: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one(self) -> "TileSpec":
        if (self.by is None) == (self.grid_m is None):
            raise ValueError("give exactly one of by: streets or grid_m")
        if self.by is not None and self.by != "streets":
            raise ValueError(f"by: {self.by!r}: only streets is known")
        return self


class BatchFile(_Section):
    """A batch file: ``runs:``, or one ``config`` with ``tiles:``."""

    runs: list[RunEntry] | None = None
    config: Path | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)
    tiles: TileSpec | None = None

    @model_validator(mode="after")
    def _shape(self) -> "BatchFile":
        if (self.runs is None) == (self.config is None):
            raise ValueError("give runs: (a list) or config: with tiles:, not both")
        if self.config is not None and self.tiles is None:
            raise ValueError("config: needs tiles: (by: streets or grid_m); a single run is `carecircle run`")
        if self.runs is not None:
            if not self.runs:
                raise ValueError("runs: is empty")
            seen = set()
            for entry in self.runs:
                if entry.name in seen:
                    raise ValueError(f"run name {entry.name!r} appears twice (names are output folders)")
                seen.add(entry.name)
        return self


def _check_name(name: str) -> None:
    if not name.strip() or name.startswith(".") or any(c in name for c in "/\\:") or name in RESERVED_NAMES:
        raise ValueError(f"name {name!r} cannot be a folder name (no / \\ :, no leading dot, not {sorted(RESERVED_NAMES)})")


@dataclass(frozen=True)
class Task:
    """One unit of work: a run config (plus overrides), optionally one tile of it."""

    name: str
    config: Path
    overrides: dict = field(default_factory=dict)
    tiles: tuple = ()  # every tile polygon (EPSG:4326), the same in each tile task
    tile_index: int | None = None
    fingerprint: str = ""


def load_batch(path: str | Path) -> tuple[BatchFile, list[Task]]:
    """Read a batch file and plan its tasks.

    Parameters
    ----------
    path : str or pathlib.Path

    Returns
    -------
    (BatchFile, list of Task)
        Config paths absolute. A run config that does not exist or does not validate is
        *not* an error here: its task fails and is reported while the others run.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: batch file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (UnicodeDecodeError, yaml.YAMLError) as err:
        raise InputError(f"{path}: not a valid UTF-8 YAML file ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a batch file is a mapping with runs: or config: + tiles:")
    try:
        batch = BatchFile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        msg = "unknown key (runs, config, overrides, tiles)" if first["type"] == "extra_forbidden" else first["msg"].removeprefix("Value error, ")
        raise InputError(f"{path}: {key}: {msg}") from None
    base = path.parent.resolve()
    if batch.runs is not None:
        tasks = [Task(e.name, _absolute(base, e.config), e.overrides) for e in batch.runs]
    else:
        from carecircle.tiles import plan_tiles

        config_path = _absolute(base, batch.config)
        config = load_run_config(config_path, batch.overrides)  # tiles need a valid config to plan
        plan = plan_tiles(config, by=batch.tiles.by, grid_m=batch.tiles.grid_m)
        if not plan:
            raise InputError(f"{path}: tiles: the plan has no tile (no community in the config's region)")
        polys = tuple(geom for _, geom in plan)
        tasks = [Task(name, config_path, batch.overrides, polys, i) for i, (name, _) in enumerate(plan)]
    return batch, [_fingerprinted(t) for t in tasks]


def _absolute(base: Path, p: Path) -> Path:
    return p if p.is_absolute() else base / p


def _fingerprinted(task: Task) -> Task:
    """The task with a hash of everything that decides its outputs (config text, overrides, tile)."""
    h = hashlib.sha256()
    h.update(str(task.config).encode())
    if task.config.is_file():
        h.update(task.config.read_bytes())
    h.update(json.dumps(task.overrides, sort_keys=True, ensure_ascii=False, default=str).encode())
    if task.tile_index is not None:
        h.update(str(task.tile_index).encode())
        for geom in task.tiles:
            h.update(geom.wkb)
    return Task(task.name, task.config, task.overrides, task.tiles, task.tile_index, h.hexdigest()[:16])


def load_run_config(path: Path, overrides: dict):
    """A run config with ``overrides`` merged in key by key.

    Paths in overrides resolve like the config's own (against its folder); a key set to
    ``null`` is unset (``walk: {distance_m: 800, minutes: null}``).
    """
    from carecircle.config import load_config, parse_config

    path = Path(path)
    config = load_config(path)
    if not overrides:
        return config
    data = _deep_merge(config.model_dump(mode="json", exclude_unset=True, exclude={"source"}), overrides)
    return parse_config(data, path=path)


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_task(task: Task, out_root: str, clip=None) -> dict:
    """Run one task into ``out_root/<name>`` (on a Dask worker); never raises.

    Parameters
    ----------
    task : Task
    out_root : str
    clip : carecircle.tiles.Clip or str, optional
        A tile's inputs, cut out by :func:`prepare_tiles` (or the one-line error it met); a
        tile task without it reads the region itself (a tile re-run alone).

    Returns
    -------
    dict
        ``name``, ``ok``, ``error`` (one line, or None), ``seconds`` (wall), ``cpu_s`` (CPU
        time of the worker process), ``peak_rss_mb`` (the worker process's peak resident
        memory so far), ``worker_pid``, ``fingerprint``.
    """
    from carecircle import pipeline

    def work() -> None:
        nonlocal clip
        config = load_run_config(task.config, task.overrides)
        if task.tile_index is not None:
            from carecircle import tiles

            if isinstance(clip, str):
                raise InputError(clip)
            if clip is None:
                clip = tiles.prepare(config, list(task.tiles), [task.tile_index], [task.name])[0]
            config = tiles.tile_config(config)
        pipeline.run(config, Path(out_root) / task.name, log=lambda line: None, clip=clip)

    return {"name": task.name, **_measured(work), "fingerprint": task.fingerprint}


def prepare_tiles(tasks: list[Task]) -> dict:
    """Read a tiled region's layers once and cut out every tile of ``tasks`` (on a Dask worker); never raises.

    Returns
    -------
    dict
        ``clips`` (one :class:`carecircle.tiles.Clip` per task, or the one-line error for all)
        and the record of :func:`_measured`.
    """
    from carecircle import tiles

    clips: list = []

    def work() -> None:
        first = tasks[0]
        config = load_run_config(first.config, first.overrides)
        clips[:] = tiles.prepare(config, list(first.tiles), [t.tile_index for t in tasks], [t.name for t in tasks])

    rec = _measured(work)
    return {**rec, "clips": clips if rec["ok"] else [f"tiles: {rec['error']}"] * len(tasks)}


def _clip_of(prepared: dict, k: int):
    """The ``k``-th tile's clip of :func:`prepare_tiles` (a task of its own, so each tile fetches only its piece)."""
    return prepared["clips"][k]


def _prepared_record(prepared: dict) -> dict:
    return {k: v for k, v in prepared.items() if k != "clips"}


def _measured(work: Callable[[], None]) -> dict:
    """Run ``work``: ``ok``, ``error`` (one line: an InputError's text, else an internal error), time and memory."""
    import resource

    t0, cpu0 = time.perf_counter(), time.process_time()
    error = None
    try:
        work()
    except InputError as err:
        error = _one_line(str(err))
    except Exception as err:  # noqa: BLE001 - a task reports, the batch goes on
        error = _one_line(f"internal error: {type(err).__name__}: {err}")
    return {
        "ok": error is None, "error": error,
        "seconds": round(time.perf_counter() - t0, 2), "cpu_s": round(time.process_time() - cpu0, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "worker_pid": os.getpid(),
    }


def _one_line(text: str) -> str:
    text = text.strip()
    return text.splitlines()[0] if text else "error"


def finished(task: Task, out: Path, state: dict) -> bool:
    """Whether ``task`` finished in an earlier batch: a completed ``summary.json`` of the same task."""
    summary = out / task.name / "summary.json"
    try:
        data = json.loads(summary.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if "outputs" not in data:
        return False
    recorded = state.get("tasks", {}).get(task.name, {})
    return recorded.get("fingerprint") == task.fingerprint and recorded.get("ok", False)


@dataclass
class BatchResult:
    """What a batch did: every task's record, the province summary, seconds per phase."""

    tasks: list[dict]
    summary: dict
    timings: dict = field(default_factory=dict)

    @property
    def failures(self) -> list[dict]:
        return [t for t in self.tasks if not t["ok"]]


def run_batch(batch_path: str | Path, out: str | Path, *, scheduler: str | None = None, workers: int | None = None,
              resume: bool = False, log: Log = print) -> BatchResult:
    """Run every task of a batch file on dask.distributed and merge the outputs.

    Parameters
    ----------
    batch_path : str or pathlib.Path
        The batch file.
    out : str or pathlib.Path
        Output folder: ``OUT/<name>/`` per task, the merged outputs at the top.
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); workers must see the
        input files and ``out`` at the same paths. Default: a LocalCluster of worker
        processes on this machine.
    workers : int, optional
        LocalCluster workers (default: one per core); ignored with ``scheduler``.
    resume : bool
        Skip tasks that finished in an earlier batch into ``out`` (same config, overrides and tile).
    log : callable

    Returns
    -------
    BatchResult
    """
    from carecircle.merge import merge_batch

    from carecircle import outdir

    batch, tasks = load_batch(batch_path)
    # The batch folder follows the run rules: new, empty or an earlier batch output (its marker
    # lists the merged files and every run folder's own), never the batch file's folder.
    out = outdir.check_target(out, config_file=Path(batch_path))
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / STATE_FILE
    state = _read_state(state_path) if resume else {}
    records = {}
    todo = []
    for t in tasks:
        if resume and finished(t, out, state):
            records[t.name] = {**state["tasks"][t.name], "resumed": True}
        else:
            todo.append(t)
    log(f"批量 batch: {len(tasks)} task(s), {len(tasks) - len(todo)} already finished, {len(todo)} to run")
    timings = {}
    if todo:
        done_records, timings = _submit(todo, str(out), scheduler=scheduler, workers=workers, log=log)
        records.update((rec["name"], rec) for rec in done_records)
    ordered = [records[t.name] for t in tasks]
    done = [(t.name, out / t.name) for t in tasks if records[t.name]["ok"]]
    t0 = time.perf_counter()
    summary = merge_batch(out, done, failed=[r for r in ordered if not r["ok"]], tasks=ordered,
                          tiled=batch.tiles is not None, log=log)
    timings["merge_s"] = round(time.perf_counter() - t0, 2)
    _write_state(state_path, batch_path, ordered, timings)
    outdir.write_marker(out, [*summary["outputs"], STATE_FILE, *_run_files(out)])
    return BatchResult(ordered, summary, timings)


def _run_files(out: Path) -> list[str]:
    """Every file of the run folders in ``out`` (folders carrying a run's own marker)."""
    from carecircle.outdir import MARKER

    return [p.relative_to(out).as_posix() for sub in sorted(out.iterdir()) if (sub / MARKER).is_file()
            for p in sub.rglob("*") if p.is_file()]


def _submit(tasks: list[Task], out: str, *, scheduler: str | None, workers: int | None,
            log: Log) -> tuple[list[dict], dict]:
    """Run ``tasks`` on a Dask cluster: every task's record (logged as it finishes), and phase seconds."""
    import logging

    from dask.distributed import Client, LocalCluster, as_completed

    t0 = time.perf_counter()
    if scheduler:
        try:
            client, cluster = Client(scheduler, timeout="30s"), None
        except (OSError, TimeoutError, ValueError) as err:
            raise InputError(f"--scheduler {scheduler}: no Dask scheduler answered ({_one_line(str(err))})") from None
    else:
        # Worker processes (the analysis holds the GIL); no dashboard port to collide on a
        # shared machine; no memory limit, so a big district is not killed at a guess.
        cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                               dashboard_address=None, memory_limit=0, silence_logs=logging.ERROR)
        client = Client(cluster)
    t1 = time.perf_counter()
    try:
        # A tiled region is read once, on a worker; each tile task then fetches only its own piece.
        tiled = [t for t in tasks if t.tile_index is not None]
        clips, prepared = {}, None
        if tiled:
            whole = client.submit(prepare_tiles, tiled, key=f"carecircle-tiles-{tiled[0].fingerprint}", pure=False)
            clips = {t.name: client.submit(_clip_of, whole, k, key=f"carecircle-tile-{k}-{t.fingerprint}", pure=False)
                     for k, t in enumerate(tiled)}
            prepared = client.submit(_prepared_record, whole, pure=False)
            del whole  # freed once every tile has its piece
        by_key = {}
        futures = []
        for i, t in enumerate(tasks):
            fut = client.submit(run_task, t, out, clips.pop(t.name, None), key=f"carecircle-task-{i}-{t.fingerprint}",
                                pure=False)
            by_key[fut.key] = t
            futures.append(fut)
        timings = {}
        if prepared is not None:
            timings["prepare"] = prepared.result()
            log(f"分块 tiles: the region read once and cut into {len(tiled)} tile(s) "
                f"({timings['prepare']['seconds']} s)" + (f": {timings['prepare']['error']}" if timings["prepare"]["error"] else ""))
            del prepared
        records = []
        for fut in as_completed(futures):
            t = by_key[fut.key]
            try:
                rec = fut.result()
            except Exception as err:  # noqa: BLE001 - a worker that died takes its task with it, not the batch
                rec = {"name": t.name, "ok": False, "error": _one_line(f"{type(err).__name__}: {err}"),
                       "seconds": None, "cpu_s": None, "peak_rss_mb": None, "worker_pid": None, "fingerprint": t.fingerprint}
            log(f"{'完成 done' if rec['ok'] else '失败 FAILED'} {t.name}" + (f": {rec['error']}" if rec["error"] else f" ({rec['seconds']} s)"))
            records.append(rec)
        return records, {"cluster_start_s": round(t1 - t0, 2), "tasks_s": round(time.perf_counter() - t1, 2), **timings}
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _read_state(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(path: Path, batch_path, records: list[dict], timings: dict) -> None:
    data = {"batch": str(Path(batch_path).resolve()), "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "timings": timings, "tasks": {r["name"]: r for r in records}}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
