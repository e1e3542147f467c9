"""Where the platform puts things: the /opt/ml tree, movable with ALGOBOX_ML_ROOT for local use."""

import os
from dataclasses import dataclass
from pathlib import Path

ML_ROOT_ENV = "ALGOBOX_ML_ROOT"
DEFAULT_ML_ROOT = "/opt/ml"


@dataclass(frozen=True)
class MLPaths:
    """The SageMaker container layout below one root directory."""

    root: Path

    @classmethod
    def from_env(cls, environ=None):
        environ = os.environ if environ is None else environ
        return cls(Path(environ.get(ML_ROOT_ENV) or DEFAULT_ML_ROOT))

    @property
    def config_dir(self):
        return self.root / "input" / "config"

    @property
    def hyperparameters(self):
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config(self):
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config(self):
        return self.config_dir / "resourceconfig.json"

    @property
    def checkpoint_config(self):
        return self.config_dir / "checkpointconfig.json"

    @property
    def default_checkpoint_dir(self):
        """Where SageMaker syncs checkpoints with S3 (``CheckpointConfig.LocalPath``'s default: /opt/ml/checkpoints)."""
        return self.root / "checkpoints"

    @property
    def data_dir(self):
        return self.root / "input" / "data"

    def channel_dir(self, name):
        return self.data_dir / name

    def channel_fifo(self, name, epoch):
        """Pipe mode: the platform writes epoch N of channel C into the FIFO ``C_N``."""
        return self.data_dir / f"{name}_{epoch}"

    @property
    def model_dir(self):
        return self.root / "model"

    @property
    def output_dir(self):
        return self.root / "output"

    @property
    def output_data_dir(self):
        return self.output_dir / "data"

    @property
    def failure_file(self):
        return self.output_dir / "failure"
