"""Checkpoints for managed spot training: ``xgboost-checkpoint.<round>`` in /opt/ml/checkpoints, every round.

The open container's names and rule: the number is the zero-based round just finished, a restarted job loads
the highest and boosts the rounds left; the five newest are kept. Files are written under a dot-name and
renamed, so an interrupted write never leaves a torn checkpoint.
"""

import logging
import os
import re
from pathlib import Path

import xgboost as xgb

log = logging.getLogger(__name__)

PREFIX = "xgboost-checkpoint"
KEEP = 5
_NAME = re.compile(rf"^{PREFIX}\.([0-9]+)$")


class Checkpoints:
    def __init__(self, directory):
        self.directory = Path(directory)

    @classmethod
    def for_job(cls, context):
        """The job's checkpoint folder (checkpointconfig.json's LocalPath, else the platform's default) when the
        job has one: named in the config, or present (the platform creates it when checkpoints are on)."""
        named = context.config.checkpoint.local_path
        if named:
            directory = Path(named)
        else:  # the runtime's default, or /opt/ml/checkpoints (SageMaker's LocalPath default) if that exists
            candidates = [Path(context.checkpoints.directory), context.paths.root / "checkpoints"]
            directory = next((c for c in candidates if c.is_dir()), None)
            if directory is None:
                return None
        directory.mkdir(parents=True, exist_ok=True)
        return cls(directory)

    def rounds(self):
        found = []
        for name in os.listdir(self.directory):
            match = _NAME.match(name)
            if match:
                found.append(int(match.group(1)))
        return sorted(found)

    def latest(self):
        """(Booster, rounds done) of the newest readable checkpoint, or (None, 0)."""
        for number in reversed(self.rounds()):
            path = self.directory / f"{PREFIX}.{number}"
            booster = xgb.Booster()
            try:
                booster.load_model(bytearray(path.read_bytes()))
            except xgb.core.XGBoostError:
                log.warning("Skipping unreadable checkpoint %s", path)
                continue
            return booster, booster.num_boosted_rounds()
        return None, 0

    def save(self, booster, epoch):
        path = self.directory / f"{PREFIX}.{epoch}"
        temporary = self.directory / f".{PREFIX}.{epoch}.tmp"
        temporary.write_bytes(bytes(booster.save_raw("ubj")))
        os.replace(temporary, path)
        for old in self.rounds()[:-KEEP]:
            (self.directory / f"{PREFIX}.{old}").unlink(missing_ok=True)

    def callback(self, is_master):
        checkpoints = self

        class SaveCheckpoint(xgb.callback.TrainingCallback):
            def after_iteration(self, model, epoch, evals_log):
                if is_master:
                    checkpoints.save(model, epoch)
                return False

        return SaveCheckpoint()
