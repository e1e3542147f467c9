"""DeepAR training: read the series, settle the layout, train on random windows, checkpoint, score ``test``.

An epoch is as many windows as the training data holds non-overlapping (context_length + prediction_length)
stretches (at least one mini-batch); with several hosts each draws its share of them, and their gradients are
averaged every step (data parallel, through ``context.cluster``). torch is imported only inside ``train``.
"""

import io
import logging
import math
import time
from dataclasses import replace

import numpy as np

from common.accel import pick_device
from common.errors import AlgorithmError, DataError

from . import data
from .dataset import Layout
from .frequency import Frequency
from .model import DeepARModel, build_network

log = logging.getLogger(__name__)

SEED = 17
WEIGHT_DECAY = 1e-8       # GluonTS's defaults: Adam, weight decay 1e-8, gradient norm clipped at 10,
CLIP_NORM = 10.0          # the learning rate halved after 10 epochs without a lower loss
PLATEAU_PATIENCE = 10
PLATEAU_FACTOR = 0.5
CHECKPOINT_PREFIX = "deepar-epoch-"
KEEP_CHECKPOINTS = 2


class Trainer:
    """The network, its optimiser and the epoch loop's state (what a checkpoint holds)."""

    def __init__(self, network, hp, device):
        import torch

        self.network = network.to(device)
        self.device = device
        self.optimizer = torch.optim.Adam(network.parameters(), lr=hp["learning_rate"], weight_decay=WEIGHT_DECAY)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(self.optimizer, factor=PLATEAU_FACTOR,
                                                                    patience=PLATEAU_PATIENCE)
        self.epoch = 0              # epochs completed
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state = None
        self.bad_epochs = 0
        self.last_loss = math.nan
        self.rng = None

    def state(self, signature):
        return {"signature": signature, "epoch": self.epoch, "network": self.network.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "best_loss": self.best_loss, "best_epoch": self.best_epoch, "best_state": self.best_state,
                "bad_epochs": self.bad_epochs, "last_loss": self.last_loss,
                "rng": self.rng.bit_generator.state}

    def restore(self, state):
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.best_loss, self.best_epoch = state["epoch"], state["best_loss"], state["best_epoch"]
        self.best_state, self.bad_epochs, self.last_loss = state["best_state"], state["bad_epochs"], state["last_loss"]
        self.rng.bit_generator.state = state["rng"]

    def step(self, arrays, cluster):
        """One mini-batch: ``(loss sum, observed count)``; gradients averaged over the hosts."""
        import torch

        history, observed, covariates, cats = (torch.from_numpy(a).to(self.device) for a in arrays)
        self.network.train()
        loss, count = self.network.loss(history, observed, covariates, cats)
        self.optimizer.zero_grad(set_to_none=False)
        loss.backward()
        if cluster.world_size > 1:
            grads = [p.grad for p in self.network.parameters()]
            flat = torch.cat([g.reshape(-1) for g in grads])
            cluster.all_reduce_sum(flat)
            flat /= cluster.world_size
            offset = 0
            for g in grads:
                g.copy_(flat[offset:offset + g.numel()].view_as(g))
                offset += g.numel()
        torch.nn.utils.clip_grad_norm_(self.network.parameters(), CLIP_NORM)
        self.optimizer.step()
        return float(loss.detach()) * float(count), float(count)


def signature(hp, layout):
    keys = ("context_length", "prediction_length", "likelihood", "num_layers", "num_cells", "embedding_dimension",
            "dropout_rate", "learning_rate", "mini_batch_size")
    return {**{k: hp[k] for k in keys}, "time_freq": str(layout.freq), "cardinality": list(layout.cardinality),
            "num_dynamic_feat": layout.num_dynamic_feat}


def load_checkpoint(context, trainer, sig):
    import torch

    path = context.checkpoints.latest(CHECKPOINT_PREFIX)
    if path is None:
        return False
    try:
        state = torch.load(path, map_location=trainer.device, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: start over rather than fail the job
        log.warning("Ignoring checkpoint %s, which cannot be read (%s: %s)", path, type(exc).__name__, exc)
        return False
    if state.get("signature") != sig:
        log.warning("Ignoring checkpoint %s: it was written with other settings (%s, now %s)", path,
                    state.get("signature"), sig)
        return False
    trainer.restore(state)
    log.info("Resumed from checkpoint %s: %d epoch(s) done, best loss %.6g at epoch %d", path, trainer.epoch,
             trainer.best_loss, trainer.best_epoch)
    return True


def save_checkpoint(context, trainer, sig):
    import torch

    buffer = io.BytesIO()
    torch.save(trainer.state(sig), buffer)
    checkpoints = context.checkpoints
    checkpoints.save_bytes(f"{CHECKPOINT_PREFIX}{trainer.epoch}", buffer.getvalue())
    names = sorted(checkpoints.names(CHECKPOINT_PREFIX), key=lambda n: int(n[len(CHECKPOINT_PREFIX):] or 0))
    for name in names[:-KEEP_CHECKPOINTS]:
        checkpoints.path(name).unlink(missing_ok=True)


def settle_layout(context, hp, series):
    freq = Frequency.parse(hp["time_freq"])
    p, c = hp["prediction_length"], hp["context_length"]
    cardinality = data.settle_cardinality(series, hp["cardinality"])
    dynamic = data.settle_dynamic(series, hp["num_dynamic_feat"])
    if hp["likelihood"] == "beta":
        data.check_beta(series)
    layout = Layout(freq, tuple(freq.lags()), c, p, cardinality, dynamic)
    return layout, series


def cpu_threads(hp, input_size, cores=None):
    """One thread unless a step's matmuls are big (16M multiply-adds): below that OpenMP's spin-waits cost more
    than they save (12x slower with 2 threads on a busy 2-core machine at the default sizes, measured)."""
    import os

    cores = cores or len(os.sched_getaffinity(0))
    cells = hp["num_cells"]
    work = hp["mini_batch_size"] * (input_size + cells) * 4 * cells * hp["num_layers"]
    return 1 if work < (1 << 24) else cores


def train(context):
    """Read and check the training series first (data errors come before torch is imported), then train."""
    hp = context.hyperparameters
    with context.timings.stage("read"):
        series = data.read_series(context, "train")
    if context.stop.is_set() and not series:
        raise AlgorithmError("Training was stopped (SIGTERM) before the training series were read; no model saved")
    series = data.long_enough(series, hp["prediction_length"], "train", hp["prediction_length"])
    layout, series = settle_layout(context, hp, series)
    import torch

    device = pick_device()
    torch.manual_seed(SEED)
    with context.cluster(device) as cluster:
        if cluster.world_size > 1 and hp["cardinality"] == "auto" and layout.cardinality:
            layout = replace(layout, cardinality=data.shared_cardinality(layout.cardinality, cluster))
        train_on(context, hp, cluster, device, series, layout)


def train_on(context, hp, cluster, device, series, layout):
    import torch

    from .dataset import TrainingWindows

    windows = TrainingWindows(series, layout)
    log.info("Training series: %d (%d points, %d observed); cardinality %s, %d dynamic feature(s); lags %s; "
             "%d covariates; likelihood %s; device %s", len(series), windows.total_points, windows.observations,
             list(layout.cardinality) or "none", layout.num_dynamic_feat, list(layout.lags), layout.num_covariates,
             hp["likelihood"], device)
    if windows.observations == 0:
        raise DataError("The training series hold no observed target values (all are missing)")

    network = build_network(layout, hp["likelihood"], hp)
    if str(device) == "cpu":
        torch.set_num_threads(cpu_threads(hp, network.input_size))
        log.info("CPU threads: %d", torch.get_num_threads())
    if cluster.world_size > 1:  # every host starts from the master's weights
        for tensor in network.state_dict().values():
            cluster.broadcast(tensor)
    trainer = Trainer(network, hp, device)
    trainer.rng = np.random.default_rng([SEED, cluster.rank])
    sig = signature(hp, layout)
    load_checkpoint(context, trainer, sig)
    if cluster.world_size > 1:  # hosts resume from the same epoch or all start over
        epochs = cluster.all_gather(torch.tensor([trainer.epoch], dtype=torch.int64))
        if int(epochs.min()) != int(epochs.max()):
            log.warning("Hosts found checkpoints of different epochs (%s); starting over", epochs.tolist())
            trainer = Trainer(build_network(layout, hp["likelihood"], hp), hp, device)
            trainer.rng = np.random.default_rng([SEED, cluster.rank])

    size = hp["mini_batch_size"]
    per_epoch = max(1, math.ceil(windows.total_points / (layout.context_length + layout.prediction_length)))
    batches = max(1, math.ceil(per_epoch / (size * cluster.world_size)))
    log.info("Each epoch: %d batch(es) of %d windows per host (%d host(s))", batches, size, cluster.world_size)
    context.started()
    patience = hp.get("early_stopping_patience")
    stopped = False
    with context.timings.stage("epochs"):
        while trainer.epoch < hp["epochs"] and not stopped:
            started = time.perf_counter()
            total = count = 0.0
            for _ in range(batches):
                if stop_requested(context, cluster):
                    stopped = True
                    break
                loss_sum, observed = trainer.step(windows.batch(trainer.rng, size), cluster)
                total += loss_sum
                count += observed
            if stopped:
                log.warning("Stopped by a signal in epoch %d; keeping the model of the last whole epoch",
                            trainer.epoch + 1)
                break
            totals = cluster.all_reduce_sum(torch.tensor([total, count], dtype=torch.float64))
            loss = float(totals[0] / max(float(totals[1]), 1.0))
            if not math.isfinite(loss):
                raise AlgorithmError(f"The training loss became {loss} in epoch {trainer.epoch + 1}; try a lower "
                                     "learning_rate or another likelihood")
            trainer.epoch += 1
            trainer.last_loss = loss
            trainer.scheduler.step(loss)
            elapsed = time.perf_counter() - started
            if loss < trainer.best_loss:
                trainer.best_loss, trainer.best_epoch, trainer.bad_epochs = loss, trainer.epoch, 0
                if patience:
                    trainer.best_state = {k: v.detach().clone() for k, v in trainer.network.state_dict().items()}
            else:
                trainer.bad_epochs += 1
            log.info("Epoch[%d] train loss=%.6g, %d batches, %.0f windows/s, %.2f s, learning rate %.3g",
                     trainer.epoch, loss, batches, batches * size / max(elapsed, 1e-9), elapsed,
                     trainer.optimizer.param_groups[0]["lr"])
            log.info("#progress_metric: host=%s, completed %.0f %% of epochs", context.host,
                     100.0 * trainer.epoch / hp["epochs"])
            save_checkpoint(context, trainer, sig)
            if patience and trainer.bad_epochs >= patience:
                log.info("Early stopping: no lower loss in %d epochs; the best was %.6g at epoch %d", patience,
                         trainer.best_loss, trainer.best_epoch)
                break

    if trainer.epoch == 0:
        if stopped:
            log.warning("Stopped before the first epoch ended; saving the network as it is")
        else:
            raise AlgorithmError("No epoch was trained")
    final_loss = trainer.last_loss
    if patience and trainer.best_state is not None:
        trainer.network.load_state_dict(trainer.best_state)
        final_loss = trainer.best_loss
        log.info("Keeping the model of epoch %d (loss %.6g)", trainer.best_epoch, trainer.best_loss)
    if math.isfinite(final_loss):
        context.log_metric("train:final_loss", final_loss)

    if cluster.is_master:
        DeepARModel.save(context.paths.model_dir, trainer.network.cpu(), layout, hp["likelihood"], hp)
        log.info("Saved %s and %s", "model.json", "model.pt")
        if context.has_channel("test") and not context.stop.is_set():
            with context.timings.stage("evaluate"):
                scores = evaluate(context, trainer.network, layout, hp)
            context.report_test(scores)
    cluster.barrier()


def stop_requested(context, cluster):
    """SIGTERM on any host ends every host's epoch at the same step."""
    local = context.stop.is_set()
    if cluster.world_size == 1:
        return local
    import torch

    flag = cluster.all_reduce_sum(torch.tensor([1.0 if local else 0.0]))
    return float(flag[0]) > 0


def evaluate(context, network, layout, hp):
    """The last prediction_length points of every test series, forecast from what precedes them."""
    from .forecast import Scores, quantiles, sample_paths

    series = data.read_series(context, "test")
    p = layout.prediction_length
    series = data.long_enough(series, p, "test", p + 1)
    data.check_against(series, layout, "test")
    levels = list(hp["test_quantiles"])
    scores = Scores(levels)
    started = time.perf_counter()
    chunk = 1024
    for first in range(0, len(series), chunk):
        part = series[first:first + chunk]
        paths = sample_paths(network, layout, part, hp["num_eval_samples"], cut=p, seed=SEED + first)
        values = quantiles(paths, levels)
        means = paths.mean(axis=1)
        for i, s in enumerate(part):
            scores.add(s.target[-p:], means[i], {level: values[level][i] for level in levels})
    log.info("Test: %d series forecast (%d samples each) in %.2f s", len(series), hp["num_eval_samples"],
             time.perf_counter() - started)
    if scores.count == 0:
        raise DataError("The test series hold no observed target values in their last prediction_length points")
    return scores.results()
