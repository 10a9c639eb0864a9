"""A job that asks for GPUs (scaling.use_gpu) never trains on the CPU silently: on a TensorFlow
without CUDA, or a cluster without GPUs, it fails at start naming the field, the old run kept."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from slimray.core.spec import ScalingSpec, parse_spec
from slimray.runtime.gpu import GpuUnavailableError, require_gpu


def _spec(out, **scaling) -> dict:
    return {"name": "gpu", "model": {"source": "seed_cnn"}, "data": {"source": "digits"},
            "train": {"steps": 4, "batch_size": 16}, "scaling": {"num_workers": 1, **scaling},
            "output": {"dir": str(out)}}  # fmt: skip


def test_a_worker_on_a_cpu_build_refuses_use_gpu_naming_the_cuda_image():
    require_gpu(ScalingSpec(use_gpu=False))  # nothing asked, nothing checked
    with pytest.raises(GpuUnavailableError, match=r"scaling.use_gpu: true, but TensorFlow .* CPU build"):
        require_gpu(ScalingSpec(use_gpu=True))


def test_slimray_run_with_use_gpu_on_a_cluster_without_gpus_exits_2_and_keeps_the_old_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "report.json").write_text("{}")  # an old run
    spec = tmp_path / "job.yaml"
    spec.write_text(yaml.safe_dump(_spec(out, use_gpu=True)))
    proc = subprocess.run([sys.executable, "-m", "slimray.cli", "run", str(spec), "--overwrite"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "scaling.use_gpu: true, but this Ray cluster has no GPU" in proc.stdout
    assert (out / "report.json").read_text() == "{}"


@pytest.fixture(scope="module")
def ray_with_a_gpu():
    """Ray advertising one GPU, as KubeRay's --num-gpus does on a GPU pod, on a CPU-only build."""
    import ray

    from slimray.runtime.embedded_ray import start_embedded_ray

    start_embedded_ray(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_gpu_node_whose_tensorflow_has_no_cuda_fails_the_job_before_it_starts(ray_with_a_gpu, tmp_path):
    from slimray.runtime.trainer import run_job

    with pytest.raises(GpuUnavailableError, match=r"scaling.use_gpu: true, but TensorFlow .* CPU build"):
        run_job(parse_spec(_spec(tmp_path / "run", use_gpu=True)))
    assert not (tmp_path / "run").exists()
