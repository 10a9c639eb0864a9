"""Metric names, help texts and buckets shared by the service's exposition (`slimray.service.metrics`)
and the driver's Ray metrics (`slimray.runtime.metrics`): one set of names for both."""

from __future__ import annotations

PRUNE_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
PRUNE_PHASES = ("score", "allreduce", "agreement", "surgery", "retrace")
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

GAUGES = (
    ("train_samples_per_second", "samples_per_second", "Training samples per second, all workers."),
    ("throughput_gain_ratio", "throughput_gain", "Samples/s relative to the unpruned phase."),
    ("model_parameters", "params", "Parameters of the current (pruned) model."),
    ("model_flops_per_sample", "flops", "FLOPs per sample of the current model."),
    ("sparsity_ratio", "sparsity", "Fraction of prunable channels removed (0-1)."),
    (
        "gradient_allreduce_bytes_per_step",
        "gradient_allreduce_bytes_per_step",
        "Bytes of gradients each worker allreduces per step (falls as the model shrinks).",
    ),
)

# 1 per job, labelled with its allreduce backend (`tf-collective` or `horovod`): the job metrics
# join it on `job` (`* on(job) group_left(backend) slimray_job_info`) to compare the two
JOB_INFO = "slimray_job_info"
JOB_INFO_DOC = "1 per job, labelled with the backend that allreduces its gradients and scores."
