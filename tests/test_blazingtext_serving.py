"""BlazingText serving through real HTTP: fastText models trained by the library itself and by our training,
the guide's JSON and JSON Lines formats, top-k, content type = accept, unknown words, client errors."""

import json
import shutil
from pathlib import Path

import fasttext
import numpy as np
import pytest

from blazingtext_data import TOPICS, sentences, text
from emulator import Job, serve

ALG = "blazingtext"
JSON, JSONLINES = "application/json", "application/jsonlines"


def upstream_vector(model, word):
    _, ids = model.get_subwords(word)
    return np.mean([model.get_input_vector(int(i)) for i in ids], axis=0) if len(ids) else np.zeros(
        model.get_dimension())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "labelled.txt").write_bytes(text(sentences(600, seed=0)))
    (folder / "plain.txt").write_bytes(text(sentences(600, seed=0, labelled=False)))
    return folder


@pytest.fixture(scope="module")
def library_classifier(corpus, tmp_path_factory):
    """A model.bin written by the fastText library directly, not by our training."""
    root = tmp_path_factory.mktemp("library_supervised")
    (root / "model").mkdir()
    model = fasttext.train_supervised(str(corpus / "labelled.txt"), epoch=5, lr=0.5, dim=12, minCount=1,
                                      wordNgrams=2, bucket=5000, verbose=0, thread=1)
    model.save_model(str(root / "model" / "model.bin"))
    return root, model


@pytest.fixture(scope="module")
def classifier_server(library_classifier):
    with serve(ALG, library_classifier[0]) as running:
        yield running


def test_a_fasttext_classifier_serves_with_the_librarys_own_predictions(classifier_server, library_classifier):
    _, model = library_classifier
    queries = ["kernel driver linux code", "bread soup oven", "ocean boat harbor sail"]
    response = classifier_server.post(json.dumps({"instances": queries, "configuration": {"k": 2}}), JSON)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(JSON)
    answers = response.json()
    labels, probs = model.predict(queries, k=2)
    assert [a["label"] for a in answers] == [list(l) for l in labels]
    np.testing.assert_allclose([a["prob"] for a in answers], np.minimum(probs, 1.0), rtol=1e-5)
    assert [a["label"][0] for a in answers] == ["__label__tech", "__label__food", "__label__sea"]


def test_default_k_is_one(classifier_server):
    answers = classifier_server.post(json.dumps({"instances": ["cheese butter"]}), JSON).json()
    assert len(answers) == 1 and len(answers[0]["label"]) == 1 and len(answers[0]["prob"]) == 1


def test_batch_transform_jsonlines_with_k_per_line_answers_in_jsonlines(classifier_server):
    body = "\n".join(json.dumps(line) for line in [{"source": "linux kernel"}, {"source": "goal team", "k": 3}])
    response = classifier_server.post(body, JSONLINES)  # no Accept: the answer's type is the request's
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith(JSONLINES)
    first, second = [json.loads(line) for line in response.content.split(b"\n")]
    assert first["label"] == ["__label__tech"] and len(second["label"]) == 3
    assert second["label"][0] == "__label__sports" and sorted(first) == ["label", "prob"]


@pytest.mark.parametrize("body, content_type, words", [
    (json.dumps({"instances": "linux"}), JSON, "instances"),
    (json.dumps({"instances": [3]}), JSON, "instances[0]"),
    (json.dumps({"instances": ["a"], "configuration": {"k": 0}}), JSON, "k must be"),
    (json.dumps({"sentences": ["a"]}), JSON, "instances"),
    (json.dumps({"text": "a"}), JSONLINES, "source"),
    ('{"source": "a", "k": "two"}', JSONLINES, "line 1"),
])
def test_bad_requests_are_400_naming_the_problem(classifier_server, body, content_type, words):
    response = classifier_server.post(body, content_type)
    assert response.status_code == 400 and words in response.json()["error"], response.text
    assert classifier_server.post(json.dumps({"instances": ["a"]}), JSON).status_code == 200


@pytest.fixture(scope="module")
def library_vectors(corpus, tmp_path_factory):
    """A skipgram vectors.bin (with subwords) written by the fastText library directly."""
    root = tmp_path_factory.mktemp("library_vectors")
    (root / "model").mkdir()
    model = fasttext.train_unsupervised(str(corpus / "plain.txt"), model="skipgram", dim=8, minCount=1, epoch=2,
                                        minn=3, maxn=5, bucket=2000, verbose=0, thread=1)
    model.save_model(str(root / "model" / "vectors.bin"))
    return root, model


def test_fasttext_vectors_serve_words_and_subword_vectors_for_unknown_words(library_vectors):
    root, model = library_vectors
    words = ["kernel", "ocean", "kernels"]  # "kernels" is out of vocabulary: its n-grams give it a vector
    with serve(ALG, root) as server:
        response = server.post(json.dumps({"instances": words}), JSON)
        lines = server.post("\n".join(json.dumps({"source": w}) for w in words), JSONLINES)
    assert response.status_code == 200, response.text
    answers = response.json()
    assert [a["word"] for a in answers] == words
    np.testing.assert_allclose([a["vector"] for a in answers], [upstream_vector(model, w) for w in words],
                               rtol=1e-5, atol=1e-7)
    assert np.abs(answers[2]["vector"]).sum() > 0
    assert lines.headers["Content-Type"].startswith(JSONLINES)
    assert [json.loads(line)["vector"] for line in lines.content.split(b"\n")] == [a["vector"] for a in answers]


def test_our_vectors_without_subwords_give_zeros_for_unknown_words(tmp_path, corpus):
    job = Job(tmp_path / "opt_ml")
    job.add_file("train", "train.txt", (corpus / "plain.txt").read_bytes())
    job.write_config({"mode": "cbow", "min_count": "1", "vector_dim": "8", "evaluation": "false"},
                     {"train": {"ContentType": "text/plain"}})
    result = job.train(ALG)
    assert result.returncode == 0, result.output[-3000:]
    with serve(ALG, job.root) as server:
        answers = server.post(json.dumps({"instances": ["bread", "zzzunknown"]}), JSON).json()
    assert np.abs(answers[0]["vector"]).sum() > 0 and answers[1]["vector"] == [0.0] * 8


def test_a_folder_with_only_vectors_txt_serves_it(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "vectors.txt").write_text("2 3\nking 0.5 1 -1\nqueen 0.25 0 2\n")
    with serve(ALG, tmp_path) as server:
        answers = server.post(json.dumps({"instances": ["queen", "pawn"]}), JSON).json()
    assert answers == [{"vector": [0.25, 0.0, 2.0], "word": "queen"}, {"vector": [0.0, 0.0, 0.0], "word": "pawn"}]


def test_a_corrupt_model_bin_never_becomes_healthy(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "model.bin").write_bytes(b"not a fastText model")
    with pytest.raises(RuntimeError) as failed:
        with serve(ALG, tmp_path, startup_timeout=60):
            pass
    # the server exits naming the file (a loaded machine may not get that far in 60 s: still never healthy)
    assert "Cannot load the fastText model model.bin" in str(failed.value) or "did not answer" in str(failed.value)


FIXTURES = Path(__file__).parent / "fixtures" / "blazingtext"


@pytest.mark.parametrize("name", ["upstream_supervised.bin", "upstream_skipgram.bin"])
def test_models_written_by_upstream_fasttext_serve(tmp_path, name):
    expected = json.loads((FIXTURES / "upstream_expected.json").read_text())
    (tmp_path / "model").mkdir()
    target = "model.bin" if "supervised" in name else "vectors.bin"
    shutil.copy(FIXTURES / name, tmp_path / "model" / target)
    with serve(ALG, tmp_path) as server:
        if target == "model.bin":
            case = expected["supervised"]
            body = {"instances": case["queries"], "configuration": {"k": case["k"]}}
            answers = server.post(json.dumps(body), JSON).json()
            assert [a["label"] for a in answers] == case["labels"]
            assert all(0 < p <= 1 for a in answers for p in a["prob"])
        else:
            case = expected["skipgram"]
            answers = server.post(json.dumps({"instances": case["words"]}), JSON).json()
            np.testing.assert_allclose([a["vector"] for a in answers], case["vectors"], rtol=1e-5, atol=1e-7)
