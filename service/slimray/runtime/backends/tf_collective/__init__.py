"""The tf-collective backend (the default): its Ray Train set-up (`config`), `Reducer`
(`reducer`), train step (`step`) and the `WorkerBackend` tying them (`backend`)."""

from slimray.runtime.backends.tf_collective.backend import TFCollectiveBackend
from slimray.runtime.backends.tf_collective.config import TFCollectiveConfig, set_tf_config

__all__ = ["TFCollectiveBackend", "TFCollectiveConfig", "set_tf_config"]
