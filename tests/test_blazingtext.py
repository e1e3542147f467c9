"""BlazingText training through the real entrypoint: modes, hyperparameter tables, channels, artifacts, hosts."""

import gzip
import json
import re

import fasttext
import numpy as np
import pytest
from gensim.models import KeyedVectors
from gensim.test.utils import datapath

from blazingtext_data import TOPICS, sentences, text, wordsim_corpus
from containers.blazingtext import wordsim
from emulator import Job, free_port

ALG = "blazingtext"
TEXT = {"ContentType": "text/plain"}


def train(job, hp, channels=None, **kwargs):
    job.write_config(hp, channels or {"train": TEXT})
    return job.train(ALG, **kwargs)


def metric_values(output, channel, name):
    return [float(v) for v in re.findall(rf"#quality_metric: host=algo-1, {channel} {name} <loss>=(\S+)", output)]


def upstream_vector(model, word):
    """fastText's own definition: the mean of the input rows of the word's subword ids."""
    _, ids = model.get_subwords(word)
    return np.mean([model.get_input_vector(int(i)) for i in ids], axis=0) if len(ids) else np.zeros(
        model.get_dimension())


def first_failure_line(result):
    return result.failure.splitlines()[0] if result.failure else ""


SUPERVISED = {"mode": "supervised", "epochs": "5", "min_count": "1", "vector_dim": "16", "buckets": "10000",
              "learning_rate": "0.5"}


def test_supervised_writes_model_bin_that_fasttext_loads_and_reports_validation_accuracy(job):
    job.add_file("train", "train.txt", text(sentences(600, seed=0)))
    job.add_file("validation", "validation.txt", text(sentences(200, seed=1)))
    result = train(job, SUPERVISED, {"train": TEXT, "validation": TEXT})
    assert result.returncode == 0, result.output[-3000:]
    assert result.model_files == ["model.bin"]
    [accuracy] = metric_values(result.output, "validation", "accuracy")
    assert accuracy > 0.95
    model = fasttext.load_model(str(job.model_dir / "model.bin"))
    assert sorted(model.labels) == sorted(f"__label__{t}" for t in TOPICS)
    labels, _ = model.predict(["kernel compiler driver linux", "bread oven butter"], k=1)
    assert [l[0] for l in labels] == ["__label__tech", "__label__food"]
    assert model.f.getArgs().wordNgrams == 2 and model.get_dimension() == 16


def test_labels_anywhere_in_the_line_and_several_files(job):
    lines = [" ".join(reversed(line.split())) for line in sentences(600, seed=0)]  # label last
    job.add_file("train", "a.txt", text(lines[:300]))
    job.add_file("train", "b.txt", text(lines[300:]))
    job.add_file("validation", "v.txt", text(sentences(200, seed=1)))
    result = train(job, SUPERVISED, {"train": TEXT, "validation": TEXT})
    assert result.returncode == 0, result.output[-3000:]
    assert "600 lines gathered" in result.output
    assert metric_values(result.output, "validation", "accuracy")[0] > 0.95


def test_early_stopping_logs_accuracy_per_epoch_and_stops_after_patience(job):
    job.add_file("train", "train.txt", text(sentences(600, seed=0)))
    job.add_file("validation", "validation.txt", text(sentences(200, seed=1)))
    hp = {**SUPERVISED, "epochs": "12", "early_stopping": "True", "min_epochs": "1", "patience": "2"}
    result = train(job, hp, {"train": TEXT, "validation": TEXT})
    assert result.returncode == 0, result.output[-3000:]
    values = metric_values(result.output, "validation", "accuracy")
    assert 3 <= len(values) < 12 and "Early stopping" in result.output  # separable data: 1.0 early, then no gain
    best = values.index(max(values))
    assert len(values) == best + 1 + 2


def test_supervised_without_labels_is_a_client_error(job):
    job.add_file("train", "train.txt", text(sentences(50, labelled=False)))
    result = train(job, SUPERVISED)
    assert result.returncode == 1
    assert first_failure_line(result).startswith("ClientError") and "__label__" in first_failure_line(result)


@pytest.mark.parametrize("mode, name, value, owner", [
    ("supervised", "window_size", "3", "Word2Vec"), ("supervised", "subwords", "true", "Word2Vec"),
    ("cbow", "word_ngrams", "2", "supervised"), ("batch_skipgram", "early_stopping", "False", "supervised"),
])
def test_a_hyperparameter_of_the_other_mode_is_a_client_error(job, mode, name, value, owner):
    job.add_file("train", "train.txt", text(sentences(50)))
    result = train(job, {"mode": mode, name: value})
    line = first_failure_line(result)
    assert result.returncode == 1 and line.startswith("ClientError")
    assert f"Invalid hyperparameter {name}=" in line and owner in line and f"mode={mode}" in line


@pytest.mark.parametrize("hp, words", [
    ({"mode": "batch_skipgram", "subwords": "True"}, "subwords"),
    ({"mode": "skipgram", "min_char": "5", "max_char": "3"}, "min_char"),
    ({"mode": "cbow", "sampling_threshold": "0"}, "sampling_threshold"),
    ({"mode": "supervised", "learning_rate": "-1"}, "learning_rate"),
])
def test_invalid_values_are_client_errors(job, hp, words):
    job.add_file("train", "train.txt", text(sentences(50)))
    result = train(job, hp)
    assert result.returncode == 1 and words in first_failure_line(result), result.failure


def test_word2vec_refuses_a_validation_channel(job):
    job.add_file("train", "train.txt", text(sentences(50)))
    job.add_file("validation", "v.txt", text(sentences(50)))
    result = train(job, {"mode": "cbow", "min_count": "1"}, {"train": TEXT, "validation": TEXT})
    assert result.returncode == 1 and "validation" in first_failure_line(result)


@pytest.mark.parametrize("mode", ["skipgram", "cbow", "batch_skipgram"])
def test_word2vec_artifacts_load_in_gensim_and_fasttext_and_eval_json_matches_gensim(job, mode):
    job.add_file("train", "train.txt.gz", gzip.compress(text(wordsim_corpus())))
    hp = {"mode": mode, "min_count": "2", "vector_dim": "24", "epochs": "5", "sampling_threshold": "0.001",
          "window_size": "3"}
    result = train(job, hp, {"train": {**TEXT, "CompressionType": "Gzip"}})
    assert result.returncode == 0, result.output[-3000:]
    assert result.model_files == ["eval.json", "vectors.bin", "vectors.txt"]
    vectors = KeyedVectors.load_word2vec_format(str(job.model_dir / "vectors.txt"), binary=False)
    model = fasttext.load_model(str(job.model_dir / "vectors.bin"))
    assert set(vectors.index_to_key) == set(model.words) and vectors.vector_size == 24
    for word in ("tiger", "cat", "money"):
        np.testing.assert_allclose(vectors[word], upstream_vector(model, word), rtol=1e-4, atol=1e-6)
    results = json.loads((job.model_dir / "eval.json").read_text())
    scores = results[wordsim.NAME]
    _, spearman, oov = vectors.evaluate_word_pairs(datapath("wordsim353.tsv"))  # lower-cased, as ours
    assert results["mean_rho"] == pytest.approx(spearman.statistic, abs=1e-3)
    assert scores["total_pairs"] == 353 and scores["not_found"] == round(oov / 100 * 353)
    assert results["mean_rho"] > 0.1  # highly rated pairs share lines more often
    assert metric_values(result.output, "train", "mean_rho") == [pytest.approx(results["mean_rho"], abs=1e-5)]
    assert re.search(r"\d+ words/s", result.output)


def test_subwords_give_vectors_to_unknown_words(job):
    job.add_file("train", "train.txt", text(sentences(400, labelled=False)))
    result = train(job, {"mode": "skipgram", "subwords": "True", "min_count": "1", "vector_dim": "16",
                         "buckets": "5000", "evaluation": "false"})
    assert result.returncode == 0, result.output[-3000:]
    assert result.model_files == ["vectors.bin", "vectors.txt"]
    model = fasttext.load_model(str(job.model_dir / "vectors.bin"))
    args = model.f.getArgs()
    assert (args.minn, args.maxn, args.bucket) == (3, 6, 5000)
    assert np.abs(upstream_vector(model, "kernels")).sum() > 0  # out of vocabulary, built from its n-grams


def cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def topic_separation(vectors):
    """Mean cosine within topics minus across topics, over the topic words."""
    within, across = [], []
    names = sorted(TOPICS)
    for i, first in enumerate(names):
        for second in names[i:]:
            for a in TOPICS[first].split():
                for b in TOPICS[second].split():
                    if a != b:
                        (within if first == second else across).append(cosine(vectors[a], vectors[b]))
    return np.mean(within) - np.mean(across)


BATCH = {"mode": "batch_skipgram", "min_count": "1", "vector_dim": "16", "epochs": "3", "window_size": "3",
         "sampling_threshold": "0.001", "evaluation": "false"}


def test_batch_skipgram_on_two_hosts_matches_one_host(tmp_path):
    lines = sentences(4000, labelled=False)
    single = Job(tmp_path / "single")
    single.add_file("train", "train.txt", text(lines))
    one = train(single, BATCH)
    assert one.returncode == 0, one.output[-3000:]
    env = {"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
           "ALGOBOX_DIST_PORT": str(free_port())}
    jobs, processes = [], []
    for host in ("algo-1", "algo-2"):
        job = Job(tmp_path / host)
        job.add_file("train", "train.txt", text(lines))  # FullyReplicated: each host reads its share
        job.write_config(BATCH, {"train": TEXT}, hosts=("algo-1", "algo-2"), current_host=host)
        jobs.append(job)
        processes.append(job.start_train(ALG, env))
    results = [job.result(p, timeout=300) for job, p in zip(jobs, processes)]
    assert [r.returncode for r in results] == [0, 0], results[0].output[-2000:] + results[1].output[-2000:]
    assert results[0].model_files == ["vectors.bin", "vectors.txt"] and results[1].model_files == []
    tokens = [int(re.search(r"(\d+) tokens on this host \((\d) hosts\)", r.output).group(1)) for r in results]
    assert sum(tokens) == 40000 and min(tokens) > 15000  # each host read about half
    separations = []
    for root in (single.model_dir, jobs[0].model_dir):
        vectors = KeyedVectors.load_word2vec_format(str(root / "vectors.txt"), binary=False)
        separations.append(topic_separation(vectors))
    assert min(separations) > 0.3, separations
    assert abs(separations[0] - separations[1]) < 0.15, separations


def test_one_host_modes_refuse_several_hosts(job):
    job.add_file("train", "train.txt", text(sentences(50)))
    job.write_config({"mode": "skipgram"}, {"train": TEXT}, hosts=("algo-1", "algo-2"))
    result = job.train(ALG, env={"ALGOBOX_HOST_ADDRESSES": '{"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}',
                                 "ALGOBOX_DIST_JOIN_TIMEOUT": "1"})  # algo-2 never comes: tell it briefly
    assert result.returncode == 1 and "batch_skipgram" in first_failure_line(result)
