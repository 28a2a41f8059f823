"""Teacher labelling on Ray Data: `edgepara distill --ray ADDRESS|auto` (the [scale] extra).

The stages of the single-machine path, as Ray Data operators: `decode` and `augment` (targets.py) run as
tasks, the teachers (`Labeller`) in a pool of actors that each load them once. The driver gathers each
shard's clips, puts them in clip order and writes the shard with the same `shard_arrays` / `write_shard`
as the process pool, so the cache is the same: a run can be stopped, resumed, or finished on one machine,
with or without Ray. Only finished shards are written; a shard cut short by a stop is relabelled whole.

Ray Data restarts an actor whose process dies and retries its batch; the driver keys results by clip
index, so a retried clip is never counted or written twice.
"""
from __future__ import annotations

import io
import logging
import resource
import socket
import time
from pathlib import Path

import numpy as np

from ..errors import EdgeparaError, MissingExtraError
from .masks import curves_path, load_curves
from .targets import SHARD, Clip, Progress, ShardPlan, augment, decode_or_reason, label_audio, plan_shards, \
    report_skipped, shard_arrays, write_shard

# Ray's memory resource per teacher actor, so a node only takes as many as fit. Measured: one actor's peak
# RSS labelling the shared corpora is about 0.9 GB (`edgepara bench labelling`, bench/labelling.json); the rest is
# headroom for long recordings (30 s pieces).
LABELLER_MEMORY_BYTES = 2 * 1024**3
CLIPS_PER_BLOCK = 4


def connect(address: str, log=print):
    """Join the Ray cluster at `address`; `auto`: the one running on this machine, else a new local one."""
    try:
        import ray
    except ImportError:
        raise MissingExtraError("scale", "ray") from None
    if ray.is_initialized():
        return ray
    if address != "auto" and not _answers(address):  # ray.init would retry for minutes before saying so
        raise EdgeparaError(f"expected a Ray cluster at {address}, got no answer (start one with `ray start "
                            "--head`, or use --ray auto for a local one)")
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except ConnectionError:  # auto, and no cluster runs on this machine
        ray.init(logging_level="ERROR", log_to_driver=False)
    resources = ray.cluster_resources()
    log(f"ray: {len(ray.nodes())} node(s), {resources.get('CPU', 0):g} CPUs, "
        f"{resources.get('memory', 0) / 1024**3:.1f} GiB for tasks")
    return ray


def check_room(resources: dict, workers: int) -> None:
    """Refuse more teacher actors than the cluster can hold (Ray Data would wait for them forever)."""
    cpus, memory = resources.get("CPU", 0), resources.get("memory", 0)
    fits = int(min(cpus, memory // LABELLER_MEMORY_BYTES))
    if workers > fits:
        raise EdgeparaError(f"expected --workers to fit the cluster (each teacher actor takes 1 CPU and "
                            f"{LABELLER_MEMORY_BYTES / 1024**3:g} GiB), got {workers} for {cpus:g} CPUs and "
                            f"{memory / 1024**3:.1f} GiB: at most {fits}")


def _answers(address: str, timeout_s: float = 5.0) -> bool:
    """Whether something listens at HOST:PORT (a ray:// client address included)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _clip_row(index: int, clip: Clip) -> dict:
    return {"index": index, "source": clip.source, "path": clip.path, "speaker": clip.speaker,
            "start_s": clip.start_s, "mask": clip.mask or ""}


def _row_clip(row: dict) -> Clip:
    return Clip(row["source"], row["path"], row["speaker"], float(row["start_s"]), row["mask"] or None)


def decode_row(row: dict) -> dict:
    audio, reason = decode_or_reason(_row_clip(row))
    return {**row, "audio": b"" if audio is None else audio.tobytes(), "reason": reason or ""}


def augment_row(row: dict, data_root: str, seed: int) -> dict:
    if not row["reason"]:
        audio = np.frombuffer(row["audio"], np.int16)
        curves = load_curves(str(curves_path(Path(data_root))))  # cached per worker process by load_curves
        row = {**row, "audio": augment(audio, _row_clip(row), curves, seed).tobytes()}
    return row


def pack(targets: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **targets)
    return buffer.getvalue()


def unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob)) as data:
        return dict(data.items())


class TeacherActor:
    """Every teacher, loaded once per actor; labels a batch of augmented clips."""

    def __init__(self):
        from .targets import Labeller

        self.labeller = Labeller()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        out = {"index": [], "targets": [], "reason": [], "peak_rss_mb": []}
        for index, audio, reason in zip(batch["index"], batch["audio"], batch["reason"]):
            targets = None
            if not reason:
                targets, reason = label_audio(self.labeller, np.frombuffer(audio, np.int16))
            out["index"].append(int(index))
            out["targets"].append(pack(targets) if targets is not None else b"")
            out["reason"].append(str(reason or ""))
            out["peak_rss_mb"].append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        return out


def extract_targets_ray(clips: list[Clip], cache: Path, data_root: Path, seed: int, address: str = "auto",
                        workers: int = 2, log=print, durations: dict[str, float] | None = None,
                        shard_size: int = SHARD, stats: dict | None = None) -> list[Path]:
    """`targets.extract_targets` on a Ray cluster: `workers` teacher actors (each 1 CPU and
    LABELLER_MEMORY_BYTES of Ray memory), decode and augmentation as tasks beside them. `stats`, when given,
    receives the run's figures (seconds to the first clip, peak RSS of one actor)."""
    relative = [c.path for c in clips if not Path(c.path).is_absolute()]
    if relative:  # Ray workers open files from the folder their node was started in, not the driver's
        raise EdgeparaError(f"expected absolute audio paths for a Ray run, got {len(relative)} relative ones "
                            f"(e.g. {relative[0]}): give --data and --data-root as absolute paths")
    new_cache = not (cache / "clips.json").exists()
    plan = plan_shards(clips, cache, seed, shard_size)
    progress = Progress(plan, durations or {}, log, every_s=10.0)
    progress.report()
    if plan.todo:  # a finished cache needs no cluster
        try:
            ray = connect(address, log)
            check_room(ray.cluster_resources(), workers)
        except BaseException:
            # nothing was labelled: a cache this run started must not claim these recordings for a later run
            # (with other paths or teachers it would be refused as another run's)
            if new_cache and not any(p.exists() for p in plan.shards):
                (cache / "clips.json").unlink(missing_ok=True)
            raise
        figures = _run(ray, plan, data_root, seed, workers, progress)
        progress.report()
        log(f"ray: {workers} teacher actor(s), first clip after {figures['first_clip_s']:.1f} s, peak RSS of one "
            f"actor {figures['actor_peak_rss_mb']:.0f} MB")
        if stats is not None:
            stats.update(figures)
    report_skipped(plan.shards, log)
    return plan.shards


def _run(ray, plan: ShardPlan, data_root: Path, seed: int, workers: int, progress: Progress) -> dict:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the driver's own progress line instead
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    context.execution_options.preserve_order = True  # shards complete one after another: bounded driver memory
    rows = [_clip_row(i, plan.clips[i]) for shard in plan.todo for i in plan.indices_of(shard)]
    # Small blocks: a clip is a second or so of teacher work, so results reach the driver as they finish.
    # Decoding and masks are light beside the teachers: they take no CPU slot (the actors may hold all of them)
    # and at most two tasks per actor run at once.
    dataset = (ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // CLIPS_PER_BLOCK))
               .map(decode_row, num_cpus=0, compute=ray.data.TaskPoolStrategy(size=2 * workers))
               .map(augment_row, fn_kwargs={"data_root": str(Path(data_root).resolve()), "seed": seed}, num_cpus=0,
                    compute=ray.data.TaskPoolStrategy(size=2 * workers))
               .map_batches(TeacherActor, batch_size=CLIPS_PER_BLOCK, compute=ray.data.ActorPoolStrategy(size=workers),
                            num_cpus=1, memory=LABELLER_MEMORY_BYTES))
    pending: dict[int, dict[int, tuple]] = {}
    written: set[int] = set()
    peak_mb, t0, first = 0.0, time.time(), None
    for row in dataset.iter_rows():
        index = int(row["index"])
        shard = plan.shard_of(index)
        first = first if first is not None else time.time() - t0
        if shard in written:  # a retried batch delivered again after its shard was written
            continue
        results = pending.setdefault(shard, {})
        if index in results:  # a retried batch delivered twice: keep the first
            continue
        results[index] = (unpack(row["targets"]) if row["reason"] == "" else None, row["reason"] or None)
        peak_mb = max(peak_mb, float(row["peak_rss_mb"]))
        progress.add([index])
        indices = plan.indices_of(shard)
        if len(results) == len(indices):
            write_shard(plan.shards[shard], shard_arrays(plan.clips_of(shard), [results[i] for i in indices]))
            del pending[shard]
            written.add(shard)
    if pending:
        raise EdgeparaError(f"expected every clip back from Ray, got {sum(map(len, pending.values()))} of "
                            f"shards {sorted(pending)} incomplete")
    return {"first_clip_s": first or 0.0, "actor_peak_rss_mb": peak_mb}
