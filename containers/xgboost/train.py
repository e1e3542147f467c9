"""XGBoost training: hyperparameters -> library params, channels -> matrices, ``xgboost.train``, the model.

Several hosts join xgboost's own collective (its tracker on the first host); each host reads its share of
each channel, the library merges sketches and histograms, so the model equals one host's on the same rows.
"""

import logging
import threading
import time

import numpy as np

from common.distributed import master_address, port as cluster_port
from common.errors import AlgorithmError, ClientError, DataError, HyperparameterError

from . import checks, library, params as params_mod
from .data import Indexing, Layout, iter_chunks, library_message
from .matrix import build, spill_channel

log = logging.getLogger(__name__)

MODEL_FILE = "xgboost-model"
# library messages that are the user's data or settings, not our fault (as the open container lists them)
CLIENT_MESSAGES = ("label must be in", "label must be nonnegative", "Check failed: preds.size()", "base_score",
                   "feature_names mismatch", "only contains pos or neg", "label_correct", "Invalid Parameter",
                   "num_class", "Label", "label")


class Collective:
    """xgboost.collective across the job's hosts: the tracker on the first, every host a worker."""

    def __init__(self, resource):
        self.resource = resource
        self.rank = resource.rank
        self.world_size = resource.world_size
        self.tracker = None
        self.context = None

    @property
    def is_master(self):
        return self.rank == 0

    def __enter__(self):
        if self.world_size == 1:
            return self
        import xgboost as xgb
        from xgboost.tracker import RabitTracker

        master = master_address(self.resource)
        port = cluster_port()
        if self.is_master:
            self.tracker = RabitTracker(n_workers=self.world_size, host_ip=master, port=port, sortby="task",
                                        timeout=600)
            self.tracker.start()
        log.info("Joining xgboost's collective of %d hosts as rank %d (tracker %s:%d)", self.world_size, self.rank,
                 master, port)
        args = {"dmlc_communicator": "rabit", "dmlc_tracker_uri": master, "dmlc_tracker_port": port,
                "dmlc_task_id": f"{self.rank:05d}", "dmlc_timeout": 600}
        deadline = time.monotonic() + 120
        while True:
            try:
                self.context = xgb.collective.CommunicatorContext(**args)
                self.context.__enter__()
                break
            except xgb.core.XGBoostError as exc:
                if time.monotonic() > deadline:
                    raise AlgorithmError(f"Could not join the collective at {master}:{port}: "
                                         f"{library_message(exc)}") from None
                time.sleep(1)
        if xgb.collective.get_rank() != self.rank:
            raise AlgorithmError(f"collective rank {xgb.collective.get_rank()} differs from host rank {self.rank}")
        return self

    def allreduce_max(self, values):
        values = np.asarray(values, dtype=np.float64)
        if self.world_size == 1:
            return values
        import xgboost as xgb

        return xgb.collective.allreduce(values, xgb.collective.Op.MAX)

    def finish(self):
        """The other hosts leave only once the first host has written the model: the SDK's local mode stops
        every container as soon as one exits. One allreduce is the barrier; a first host that fails instead
        closes its connections, which ends the wait here with an error."""
        if self.world_size == 1:
            return
        if not self.is_master:
            log.info("Waiting for %s to write the model before leaving the collective", self.resource.hosts[0])
        self.allreduce_max(np.zeros(1))

    def __exit__(self, *exc_info):
        if self.context is not None:
            self.context.__exit__(*exc_info)
            self.context = None
        if self.tracker is not None:
            if exc_info[0] is None:
                self.tracker.wait_for(60)
            self.tracker.free()
            self.tracker = None
        return False


class _Abandoned(Exception):
    """The job failed before it needed the data: the read ahead ends at its next chunk."""


class ReadAhead:
    """The channels read into spills on a thread started at the job's first moment, so that the reading (and
    the parse threads under it) overlaps what the job does before it needs the rows: ``import xgboost``, the
    library's check of the hyperparameters, joining the collective. ``result()`` gives the spills or raises the
    reading's error; ``close()`` ends an unfinished read and deletes spills nobody took."""

    def __init__(self, context, settings):
        self.context = context
        self.settings = settings
        self.abandoned = threading.Event()
        self.spills = {}
        self.error = None
        self.taken = False
        self.thread = threading.Thread(target=self._run, name="read-ahead", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for name in ("train", "validation"):
                if self.context.has_channel(name):
                    self.spills[name] = read_channel(self.context, name, self.settings, self.abandoned)
        except BaseException as exc:  # noqa: BLE001 - raised in the job's thread by result()
            self.error = exc

    def result(self):
        """(train spill, validation spill or None)."""
        self.thread.join()
        if self.error is not None:
            raise self.error
        self.taken = True
        return self.spills["train"], self.spills.get("validation")

    def close(self):
        if self.taken:
            return
        self.abandoned.set()
        self.thread.join(timeout=30)
        for spill in self.spills.values():
            spill.delete()


def _unless(abandoned, chunks):
    for chunk in chunks:
        if abandoned.is_set():
            raise _Abandoned()
        yield chunk


def read_channel(context, name, settings, abandoned=None):
    indexing = Indexing(name)
    layout = Layout.for_objective(settings.objective, settings.csv_weights)
    chunks = iter_chunks(context.channels[name], context.paths, layout=layout, indexing=indexing, stop=context.stop)
    if abandoned is not None:
        chunks = _unless(abandoned, chunks)
    with context.timings.stage(f"read {name}"):
        started = time.perf_counter()
        spill = spill_channel(name, chunks, context.shard(name))  # (rank, hosts) if replicated
        elapsed = time.perf_counter() - started
    spill.libsvm_shift = indexing.shift
    log.info("Channel %s: %d rows, %d chunks, widest row %d features, %s, read in %.2f s (%.0f rows/s)", name,
             spill.rows, spill.chunks, spill.width, "weighted" if spill.weighted else "unweighted", elapsed,
             spill.rows / max(elapsed, 1e-9))
    return spill


def check_labels(spill, settings):
    objective = settings.objective
    if not spill.rows:
        return
    low, high = spill.label_min, spill.label_max
    if objective.startswith("multi:"):
        k = int(settings.params["num_class"])
        if low < 0 or high >= k:
            raise DataError(f"Channel {spill.name!r}: labels must be in [0, num_class={k}) for {objective}; "
                            f"found {low:g} to {high:g}")
    elif objective in ("binary:logistic", "binary:logitraw", "binary:hinge", "reg:logistic"):
        if low < 0 or high > 1:
            raise DataError(f"Channel {spill.name!r}: labels must be in [0, 1] for {objective}; found {low:g} to "
                            f"{high:g}")
    elif objective in ("count:poisson", "reg:tweedie") and low < 0:
        raise DataError(f"Channel {spill.name!r}: labels must be non-negative for {objective}; found {low:g}")
    elif objective == "reg:gamma" and low <= 0:
        raise DataError(f"Channel {spill.name!r}: labels must be positive for {objective}; found {low:g}")


def make_callbacks(settings, checkpoints, context, cluster, start_round):
    import xgboost as xgb

    from .callbacks import EvaluationLog, StopOnSignal

    # xgboost stops calling callbacks at the first that asks to stop: the ones that stop come last
    callbacks = [EvaluationLog(cluster.is_master)]
    if checkpoints is not None:
        callbacks.append(checkpoints.callback(cluster.is_master))
    if settings.early_stopping_rounds:
        metric = settings.eval_metrics[-1] if settings.eval_metrics else None
        callbacks.append(xgb.callback.EarlyStopping(
            rounds=settings.early_stopping_rounds, metric_name=metric, data_name="validation",
            maximize=None if metric is None else params_mod.direction(metric) == "Maximize", save_best=False))
    callbacks.append(StopOnSignal(context.stop, cluster))
    return callbacks


def train(context):
    hp = context.hyperparameters
    checks.check(hp, context.tuning_objective)  # the spec's check ran at setup; this adds the tuning metric
    settings = params_mod.resolve(hp, context.tuning_objective)
    if "_kfold" in context.config.hyperparameters:
        log.warning("_kfold (the open container's cross-validation mode) is not offered by this image; training "
                    "one model on the train channel")
    if settings.early_stopping_rounds and not context.has_channel("validation"):
        raise HyperparameterError(f"Invalid hyperparameter early_stopping_rounds={settings.early_stopping_rounds}: "
                                  "early stopping watches the validation channel, which this job does not have")
    reading = ReadAhead(context, settings)  # the data is read while the library loads and checks the params
    try:
        _train(context, settings, reading)
    finally:
        reading.close()


def _train(context, settings, reading):
    xgb = library.load()  # without scikit-learn's import cost
    log.info("xgboost %s; library params: %s; rounds %d%s", xgb.__version__, settings.library_params(),
             settings.num_round, f", early stopping after {settings.early_stopping_rounds} rounds without "
             f"improvement of validation-{settings.eval_metrics[-1] if settings.eval_metrics else '<default>'}"
             if settings.early_stopping_rounds else "")
    with context.timings.stage("validate hyperparameters"):
        params_mod.validate(settings)

    with Collective(context.resource) as cluster:
        context.started()  # from here SIGTERM ends training after a round and the model so far is saved
        train_spill, validation = reading.result()
        try:
            widths = [train_spill.width, validation.width if validation else 0]
            num_feature = int(cluster.allreduce_max(np.array(widths))[0])
            if validation is not None and validation.dense_width is not None and validation.width != num_feature:
                raise DataError(f"Channel 'validation' has {validation.width} features per row; the training data "
                                f"has {num_feature}")
            check_labels(train_spill, settings)
            if validation is not None:
                check_labels(validation, settings)
            library_params = settings.library_params(num_feature)
            nthread = library_params.get("nthread")
            with context.timings.stage("build matrices"):
                dtrain = build(train_spill, num_feature, quantile=settings.quantile,
                               max_bin=library_params.get("max_bin"), nthread=nthread)
                train_spill.delete()
                watch = [(dtrain, "train")]
                if validation is not None:
                    dval = build(validation, num_feature, quantile=settings.quantile, ref=dtrain if
                                 settings.quantile else None, nthread=nthread)
                    validation.delete()
                    watch.append((dval, "validation"))
        finally:
            train_spill.delete()
            if validation is not None:
                validation.delete()
        booster = run_training(context, settings, library_params, dtrain, watch, cluster)
        if cluster.is_master:
            save_model(context, booster, train_spill.libsvm_shift)
        cluster.finish()


def run_training(context, settings, library_params, dtrain, watch, cluster):
    import xgboost as xgb

    from .checkpoints import Checkpoints

    checkpoints = Checkpoints.for_job(context)
    previous, done = checkpoints.latest() if checkpoints else (None, 0)
    if previous is not None:
        log.info("Resuming from checkpoint %s: %d of %d rounds done", previous, done, settings.num_round)
    remaining = max(settings.num_round - done, 0)
    callbacks = make_callbacks(settings, checkpoints, context, cluster, done)
    log.info("xgboost.train: %d rounds, params %s", remaining, library_params)
    started = time.perf_counter()
    try:
        with context.timings.stage("boost"):
            booster = xgb.train(library_params, dtrain, num_boost_round=remaining, evals=watch,
                                callbacks=callbacks, xgb_model=previous, verbose_eval=False)
    except xgb.core.XGBoostError as exc:
        message = library_message(exc)
        if any(text in message for text in CLIENT_MESSAGES):
            raise ClientError(f"xgboost refused the data or parameters: {message}") from None
        raise AlgorithmError(f"xgboost.train failed: {message}") from None
    rounds = booster.num_boosted_rounds()
    elapsed = time.perf_counter() - started
    log.info("Boosted %d rounds (%d this run) in %.2f s (%.0f row-rounds/s)", rounds, rounds - done, elapsed,
             dtrain.num_row() * max(rounds - done, 0) / max(elapsed, 1e-9))
    if settings.early_stopping_rounds and booster.attr("best_iteration") is not None:
        log.info("Early stopping: best iteration %s (validation score %s); serving uses trees up to it",
                 booster.attr("best_iteration"), booster.attr("best_score"))
    return booster


def save_model(context, booster, libsvm_shift=None):
    """``xgboost-model``: ``Booster.save_model``'s UBJSON (today's default), written whole or not at all."""
    if libsvm_shift is not None:  # serving reads libsvm requests with the base the training data had
        booster.set_attr(algobox_libsvm_one_based=str(libsvm_shift))
    data = bytes(booster.save_raw("ubj"))
    with context.model_file(MODEL_FILE) as handle:
        handle.write(data)
    log.info("Saved %s (UBJSON, %d rounds, %d features, %d bytes)", MODEL_FILE, booster.num_boosted_rounds(),
             booster.num_features(), len(data))
