"""Whether a job that asks for GPUs gets them: `scaling.use_gpu` on a TensorFlow without CUDA
(the CPU image) or on a node whose GPU TensorFlow cannot see fails at start, never trains on CPU."""

from __future__ import annotations

import os
import socket

from slimray.core.spec import ScalingSpec

CUDA_IMAGE_HINT = "run GPU worker groups on the CUDA image (slimray:<version>-gpu, `make image-gpu`)"


class GpuUnavailableError(ValueError):
    """A job asked for GPUs (scaling.use_gpu) that its workers' TensorFlow cannot use."""


def gpu_missing() -> str | None:
    """What keeps this process's TensorFlow off a GPU, as a sentence (None: nothing). Runs in a
    Train worker, and as a tiny Ray task holding a GPU before the driver starts the workers."""
    # lazy: the driver imports this module (`check_gpu`) and must never load TensorFlow
    import tensorflow as tf

    where = f"TensorFlow {tf.__version__} on {socket.gethostname()}"
    if not tf.test.is_built_with_cuda():
        return f"{where} is a CPU build without CUDA: {CUDA_IMAGE_HINT}"
    if not tf.config.list_physical_devices("GPU"):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        return f"{where} is built with CUDA but sees no GPU (CUDA_VISIBLE_DEVICES={visible!r})"
    return None


def gpu_error(problem: str) -> GpuUnavailableError:
    return GpuUnavailableError(f"scaling.use_gpu: true, but {problem}")


def check_gpu(scaling: ScalingSpec, can_grow: bool) -> None:
    """Driver side, before anything of the old run is removed: a task holding one worker's GPUs
    asks its node. A cluster that cannot grow (embedded) without GPUs fails at once; one that can
    (an autoscaler) fails when none is offered within start_timeout_seconds."""
    # lazy: the CLI imports the driver, hence this module, for commands that never start Ray
    import ray

    if not scaling.use_gpu:
        return
    gpus = scaling.gpus_per_worker or 1.0  # Ray Train's default share for use_gpu
    total = ray.cluster_resources().get("GPU", 0)
    if not can_grow and total < gpus:
        raise gpu_error(f"this Ray cluster has no GPU ({total:g} in all) and cannot add nodes")
    ref = ray.remote(num_cpus=0, num_gpus=gpus)(gpu_missing).remote()
    ready, _ = ray.wait([ref], timeout=scaling.start_timeout_seconds)
    if not ready:
        ray.cancel(ref, force=True)
        raise gpu_error(f"no Ray node offered {gpus:g} GPU(s) within start_timeout_seconds "
                        f"({scaling.start_timeout_seconds:g} s)")  # fmt: skip
    problem = ray.get(ref)
    if problem:
        raise gpu_error(problem)


def require_gpu(scaling: ScalingSpec) -> None:
    """Worker side: every worker checks its own node (a node may join after the driver's check)."""
    problem = gpu_missing() if scaling.use_gpu else None
    if problem:
        raise gpu_error(problem)
