"""BlazingText training: cbow/skipgram and supervised through the fastText library, batch_skipgram in PyTorch.

fastText and torch are imported only inside the mode that needs them.
"""

import logging
import os
import tempfile
import time

from common.errors import ChannelError, ClientError, DataError, HyperparameterError

from . import corpus, wordsim
from .artifacts import word_vectors, write_vectors_txt
from .modes import SUPERVISED

log = logging.getLogger(__name__)
SUPERVISED_MODEL = "model.bin"
VECTORS_BIN, VECTORS_TXT, EVAL_JSON = "vectors.bin", "vectors.txt", "eval.json"


def threads():
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def fasttext_call(function, **arguments):
    """One fastText training run; its errors become client errors naming what to change."""
    try:
        return function(**arguments)
    except ValueError as exc:
        if "Empty vocabulary" in str(exc):
            raise DataError(f"No word occurs min_count={arguments.get('minCount')} times or more in the training "
                            "data: lower min_count or give more text") from None
        raise
    except RuntimeError as exc:
        if "NaN" in str(exc):
            raise HyperparameterError(f"Training diverged (fastText: {exc}); lower learning_rate "
                                      f"(now {arguments.get('lr')})") from None
        raise


def unsupervised_arguments(hp, path):
    subwords = hp["subwords"]
    return dict(input=path, model=hp["mode"], dim=hp["vector_dim"], ws=hp["window_size"], epoch=hp["epochs"],
                minCount=hp["min_count"], neg=hp["negative_samples"], t=hp["sampling_threshold"],
                lr=hp["learning_rate"], minn=hp["min_char"] if subwords else 0,
                maxn=hp["max_char"] if subwords else 0, bucket=hp["buckets"] if subwords else 0,
                loss="ns", thread=threads(), verbose=0)


def supervised_arguments(hp, path, epochs):
    return dict(input=path, dim=hp["vector_dim"], epoch=epochs, minCount=hp["min_count"], lr=hp["learning_rate"],
                wordNgrams=hp["word_ngrams"], bucket=hp["buckets"] if hp["word_ngrams"] > 1 else 0,
                thread=threads(), verbose=0)


def evaluate_and_write(context, hp, vector_of, known):
    if not hp["evaluation"]:
        return None
    results = wordsim.evaluate(vector_of, known)
    wordsim.write(results, context.paths.model_dir / EVAL_JSON)
    scores = results[wordsim.NAME]
    if results["mean_rho"] is None:
        log.warning("WS-353: only %d of %d pairs have both words in the vocabulary; no rho to report",
                    scores["total_pairs"] - scores["not_found"], scores["total_pairs"])
    else:
        log.info("WS-353: Spearman rho %.4f over %d pairs (%d with a word outside the vocabulary)",
                 results["mean_rho"], scores["total_pairs"] - scores["not_found"], scores["not_found"])
        context.log_metric("train:mean_rho", results["mean_rho"])
    return results


def train_fasttext_word2vec(context, hp, workdir):
    import fasttext

    with context.timings.stage("read"):
        path, _ = corpus.text_file(context, "train", workdir)
    arguments = unsupervised_arguments(hp, path)
    log.info("fastText %s: dim=%d ws=%d epoch=%d minCount=%d neg=%d t=%g lr=%g minn=%d maxn=%d bucket=%d threads=%d",
             hp["mode"], arguments["dim"], arguments["ws"], arguments["epoch"], arguments["minCount"],
             arguments["neg"], arguments["t"], arguments["lr"], arguments["minn"], arguments["maxn"],
             arguments["bucket"], arguments["thread"])
    with context.timings.stage("fasttext"):
        started = time.perf_counter()
        model = fasttext_call(fasttext.train_unsupervised, **arguments)
        seconds = time.perf_counter() - started
    words, counts = model.get_words(include_freq=True)
    tokens = int(sum(counts))
    log.info("Vocabulary: %d words, %d tokens; %.1f s, %.0f words/s", len(words), tokens, seconds,
             tokens * hp["epochs"] / max(seconds, 1e-9))
    with context.timings.stage("save"):
        model.save_model(str(context.paths.model_dir / VECTORS_BIN))
        vectors = word_vectors(model, words)
        write_vectors_txt(context.paths.model_dir / VECTORS_TXT, words, vectors)
    index = {w: i for i, w in enumerate(words)}
    with context.timings.stage("evaluate"):
        evaluate_and_write(context, hp, lambda w: vectors[index[w]], index.__contains__)


def accuracy(model, path):
    """Precision at 1 over the labelled lines: the share whose top label is one of the line's labels (the
    accuracy, for one label a line)."""
    lines, precision, _ = model.test(path, k=1)
    return precision if lines else None


def train_supervised(context, hp, workdir):
    import fasttext

    with context.timings.stage("read"):
        path, _ = corpus.text_file(context, "train", workdir)
        corpus.require_labels(path, "train")
        validation = None
        if context.has_channel("validation"):
            validation, _ = corpus.text_file(context, "validation", workdir)
            corpus.require_labels(validation, "validation")
    early = hp["early_stopping"] and validation is not None
    if hp["early_stopping"] and validation is None:
        log.warning("early_stopping=True needs a validation channel; training all %d epochs", hp["epochs"])
    log.info("fastText supervised: dim=%d epoch=%d minCount=%d lr=%g wordNgrams=%d bucket=%d threads=%d%s",
             hp["vector_dim"], hp["epochs"], hp["min_count"], hp["learning_rate"], hp["word_ngrams"],
             hp["buckets"], threads(),
             f", early stopping (min_epochs={hp['min_epochs']}, patience={hp['patience']})" if early else "")
    with context.timings.stage("fasttext"):
        if early:
            model = early_stopped(context, hp, path, validation)
        else:
            started = time.perf_counter()
            model = fasttext_call(fasttext.train_supervised, **supervised_arguments(hp, path, hp["epochs"]))
            log.info("Trained %d epochs in %.1f s: %d words, %d labels", hp["epochs"], time.perf_counter() - started,
                     len(model.words), len(model.labels))
    if not model.labels:
        raise DataError("The training data holds no labels", source=path)
    if validation is not None and not early:
        with context.timings.stage("validate"):
            score = accuracy(model, validation)
        if score is not None:
            log.info("Epoch %d: validation accuracy %.4f", hp["epochs"], score)
            context.log_metric("validation:accuracy", score)
    with context.timings.stage("save"):
        model.save_model(str(context.paths.model_dir / SUPERVISED_MODEL))


def early_stopped(context, hp, path, validation):
    """The model of the best epoch count: fastText's rate decays to 0 within a run, so "the model after epoch e" is
    a run of e epochs; from min_epochs on, stop once ``patience`` epoch counts in a row did not improve."""
    import fasttext

    best, best_score, stale = None, -1.0, 0
    first = min(hp["min_epochs"], hp["epochs"])
    for epochs in range(first, hp["epochs"] + 1):
        if context.stop.is_set():
            break
        started = time.perf_counter()
        model = fasttext_call(fasttext.train_supervised, **supervised_arguments(hp, path, epochs))
        score = accuracy(model, validation) or 0.0
        log.info("Epoch %d: validation accuracy %.4f (%.1f s)", epochs, score, time.perf_counter() - started)
        context.log_metric("validation:accuracy", score, epoch=epochs)
        if score > best_score:
            best, best_score, stale = model, score, 0
        else:
            stale += 1
            if stale >= hp["patience"]:
                log.info("Early stopping: no improvement for %d epochs; keeping epoch %d (accuracy %.4f)",
                         stale, epochs - stale, best_score)
                break
    return best


def train(context):
    hp = context.hyperparameters
    mode = hp["mode"]
    world = context.resource.world_size
    if world > 1 and mode != "batch_skipgram":
        raise ClientError(f"mode={mode} trains on one instance (the guide: several CPU instances run batch_skipgram "
                          f"only); this job has {world}")
    if mode != SUPERVISED and context.has_channel("validation"):
        raise ChannelError(f"Channel 'validation' is for supervised mode only; mode={mode} reads 'train' alone")
    context.started()
    if mode == "batch_skipgram":
        from .batch_skipgram import train as train_batch_skipgram

        return train_batch_skipgram(context, hp)
    with tempfile.TemporaryDirectory(prefix="blazingtext-") as workdir:
        if mode == SUPERVISED:
            train_supervised(context, hp, workdir)
        else:
            train_fasttext_word2vec(context, hp, workdir)
