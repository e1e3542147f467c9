"""Linear Learner quality against scikit-learn, and speed of all 32 models at once against SGDClassifier.

    .venv/bin/python benchmarks/bench_linear_learner.py quality
    .venv/bin/python benchmarks/bench_linear_learner.py speed [--rows 1000000] [--dim 100] [--epochs 5] [--repeat 3]
        [--before /work/main]
    .venv/bin/python benchmarks/bench_linear_learner.py hosts --rows 200000 --dim 50 --epochs 3
    .venv/bin/python benchmarks/bench_linear_learner.py whole --rows 1000000 --dim 100 --epochs 5

whole: the whole ``algobox linear-learner train`` (process start included) from a recordIO-protobuf file in File
and Pipe mode against (a) on the same rows in memory; then peak RSS (the process and its children, polled) for
--rows and 4 x --rows rows, one epoch.

hosts: the whole ``algobox linear-learner train`` (recordIO, File mode, 32 models) on one host against two real
processes joined by torch.distributed (gloo, on this one machine), each with half the rows, with per-epoch
model averaging and with per-batch gradient all-reduce: wall time and test AUC.

quality: the same stratified 70/30 split for both sides (seed 0); scikit-learn gets StandardScaler +
LogisticRegression (defaults, lbfgs to convergence) or Ridge (alpha=1); ours trains the default 32 models
(num_models=auto) on the same training rows without a validation channel (so both see the same rows; ours then
selects by cross-validation or on held-out rows, README), through the same Trainer that ``algobox linear-learner
train`` runs. Rows marked "validation": both sides get the same validation split (20% of the training split) and
train on the other 80%; scikit-learn picks LogisticRegression's C on it. Datasets: breast_cancer
(binary: AUC and F1; the DECISIVE line at the end is the like-for-like converged run against LogisticRegression,
``converged``: one model, LogisticRegression's own L2 weight, full-batch steps until the training loss converges,
5 seeds), digits (10 classes: accuracy), diabetes (RMSE), mlbench LetterRecognition (26 classes:
accuracy; downloaded with ``apt-get download r-cran-mlbench`` into ~/.cache/algobox/mlbench and read with
pyreadr).

speed: ``make_classification``-style data, 1:9 imbalanced, float32, in memory; the same number of epochs on every
side: ours num_models=32 (mini_batch_size 1000, the default) against (a) one SGDClassifier(loss="log_loss",
max_iter=epochs, tol=None) and (b) the 32-point grid of SGDClassifier over the same learning rates, wd (alpha)
and l1 our 32 models use (run sequentially, as GridSearchCV with n_jobs=1 would; the time of (b) is measured
on 4 of the 32 points and multiplied by 8, stated in the output). Test AUC on a held-out 20%.
"""

import argparse
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.spec import load_spec  # noqa: E402
from containers.linear_learner.metrics import Evaluator, roc_auc  # noqa: E402
from containers.linear_learner.settings import resolve  # noqa: E402
from containers.linear_learner.trainer import Trainer  # noqa: E402

MLBENCH = Path.home() / ".cache" / "algobox" / "mlbench"


def settings(**hp):
    return resolve(load_spec("linear-learner").hyperparameters.parse({k: str(v) for k, v in hp.items()}))


def blocks_of(x, y, rows=8192):
    return lambda epoch: ((x[i:i + rows], y[i:i + rows], None) for i in range(0, len(x), rows))


def ours(x, y, xt, yt, validation=None, seed=0, **hp):
    trainer = Trainer(settings(**hp), seed=seed)
    start, cpu = time.perf_counter(), time.process_time()
    model = trainer.fit(blocks_of(x, y), None if validation is None else blocks_of(*validation))
    seconds = time.perf_counter() - start
    ours.cpu = time.process_time() - cpu
    ours.epochs = len(trainer.history)
    evaluator = Evaluator(model, trainer.objective(), top_k=3)
    evaluator.add(xt, yt)
    return evaluator.result(), seconds, model


def letter_recognition():
    target = MLBENCH / "LetterRecognition.rda"
    if not target.exists():
        MLBENCH.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", "r-cran-mlbench"], cwd=MLBENCH, check=True, capture_output=True)
        deb = next(MLBENCH.glob("r-cran-mlbench_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(MLBENCH / "pkg")], check=True)
        source = next((MLBENCH / "pkg").rglob("LetterRecognition.rda"))
        target.write_bytes(source.read_bytes())
    import pyreadr

    frame = pyreadr.read_r(str(target))["LetterRecognition"]
    y = frame["lettr"].cat.codes.to_numpy().astype(np.float32)
    x = frame.drop(columns=["lettr"]).to_numpy(np.float32)
    return x, y


def quality(args):
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.metrics import accuracy_score, f1_score, mean_squared_error, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def split(x, y, stratify=True):
        return train_test_split(x.astype(np.float32), y.astype(np.float32), test_size=0.3, random_state=0,
                                stratify=y if stratify else None)

    rows = []
    xa, xt, ya, yt = split(*load_breast_cancer(return_X_y=True))
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(xa, ya)
    for hp in (dict(mini_batch_size=32, epochs=15), dict(mini_batch_size=32, epochs=30),
               dict(mini_batch_size=32, epochs=30, binary_classifier_model_selection_criteria="f_beta")):
        result, seconds, _ = ours(xa, ya, xt, yt, predictor_type="binary_classifier", **hp)
        rows.append(("breast_cancer", hp, "AUC", result["roc_auc_score"],
                     roc_auc_score(yt, reference.predict_proba(xt)[:, 1]), seconds))
        rows.append(("breast_cancer", hp, "F1", result["binary_f_beta"], f1_score(yt, reference.predict(xt)), seconds))
    with_validation(rows, "breast_cancer", xa, ya, xt, yt, dict(predictor_type="binary_classifier",
                                                                 mini_batch_size=32, epochs=30))
    decisive = converged(rows, xa, ya, xt, yt, reference)
    xa, xt, ya, yt = split(*load_digits(return_X_y=True))
    reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(xa, ya)
    for hp in (dict(mini_batch_size=32, epochs=30), dict(mini_batch_size=32, epochs=30, optimizer="sgd")):
        result, seconds, _ = ours(xa, ya, xt, yt, predictor_type="multiclass_classifier", num_classes=10, **hp)
        rows.append(("digits", hp, "accuracy", result["multiclass_accuracy"],
                     accuracy_score(yt, reference.predict(xt)), seconds))
    with_validation(rows, "digits", xa, ya, xt, yt, dict(predictor_type="multiclass_classifier", num_classes=10,
                                                          mini_batch_size=32, epochs=30))
    xa, xt, ya, yt = split(*load_diabetes(return_X_y=True), stratify=False)
    reference = Ridge(alpha=1.0).fit(StandardScaler().fit(xa).transform(xa), ya)
    scaler = StandardScaler().fit(xa)
    for hp in (dict(mini_batch_size=32, epochs=15),):
        result, seconds, _ = ours(xa, ya, xt, yt, predictor_type="regressor", **hp)
        rows.append(("diabetes", hp, "RMSE", result["rmse"],
                     mean_squared_error(yt, reference.predict(scaler.transform(xt))) ** 0.5, seconds))
    try:
        x, y = letter_recognition()
    except Exception as exc:  # offline without the Debian mirror
        print(f"LetterRecognition unavailable: {exc}")
    else:
        xa, xt, ya, yt = split(x, y)
        reference = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(xa, ya)
        for hp in (dict(mini_batch_size=100, epochs=15),):
            result, seconds, _ = ours(xa, ya, xt, yt, predictor_type="multiclass_classifier", num_classes=26, **hp)
            rows.append(("LetterRecognition", hp, "accuracy", result["multiclass_accuracy"],
                         accuracy_score(yt, reference.predict(xt)), seconds))
    print(f"{'dataset':18} {'metric':9} {'algobox':>8} {'sklearn':>8}  {'ours s':>6}  hyperparameters")
    for name, hp, metric, value, reference_value, seconds in rows:
        print(f"{name:18} {metric:9} {value:8.4f} {reference_value:8.4f}  {seconds:6.2f}  {hp}")
    print(decisive)


def converged(rows, xa, ya, xt, yt, reference, seeds=5):
    """breast_cancer like for like: LogisticRegression (defaults) is one model of one objective, mean log loss +
    ||w||^2 / (2 C n) on standardised features with C = 1, solved to convergence by full-batch lbfgs. Ours the
    same: num_models=1, wd = 1 / (C n) (our wd is the L2 weight of the mean loss on scaled features), l1=0, every
    row in one mini-batch, and epochs until the guide's early stopping finds the training loss converged
    (improving by less than 1e-5 relative in 3 epochs; epochs=5000 is only a cap). Threshold calibrated for F1
    (binary_classifier_model_selection_criteria=f_beta, the bar's metric) on the training rows. Nothing here is
    chosen on the test split. Run for ``seeds`` seeds (initial weights and row order); the decisive row is seed
    0's, and the summary says how many seeds meet the bar. Context rows: the same converged rows selected the
    guide's way (num_models=auto, the 32-model grid, chosen by 5-fold cross-validation) and scikit-learn choosing
    C the same way (LogisticRegressionCV, 5 folds)."""
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.metrics import f1_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    n = len(xa)
    auc_ref = roc_auc_score(yt, reference.predict_proba(xt)[:, 1])
    f1_ref = f1_score(yt, reference.predict(xt))
    hp = dict(num_models=1, wd=1.0 / n, l1=0, mini_batch_size=n, epochs=5000, early_stopping_tolerance=1e-5,
              binary_classifier_model_selection_criteria="f_beta")
    shown = {**hp, "wd": f"1/{n}", "converged": "like for like"}
    runs = []
    for seed in range(seeds):
        result, seconds, model = ours(xa, ya, xt, yt, predictor_type="binary_classifier", seed=seed, **hp)
        runs.append((result["roc_auc_score"], result["binary_f_beta"], ours.epochs, seconds, model))
    auc, f1, epochs, seconds, model = runs[0]
    rows.append(("breast_cancer", {**shown, "seed": 0, "epochs run": epochs}, "AUC", auc, auc_ref, seconds))
    rows.append(("breast_cancer", {**shown, "seed": 0, "epochs run": epochs}, "F1", f1, f1_ref, seconds))
    result, seconds, _ = ours(xa, ya, xt, yt, predictor_type="binary_classifier",
                              **{**hp, "binary_classifier_model_selection_criteria": "accuracy"})
    shown_accuracy = {**shown, "binary_classifier_model_selection_criteria": "accuracy (default)"}
    rows.append(("breast_cancer", shown_accuracy, "AUC", result["roc_auc_score"], auc_ref, seconds))
    rows.append(("breast_cancer", shown_accuracy, "F1", result["binary_f_beta"], f1_ref, seconds))
    grid = dict(mini_batch_size=n, epochs=300, early_stopping_patience=301)
    result, seconds, _ = ours(xa, ya, xt, yt, predictor_type="binary_classifier", **grid)
    cv = make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10.0 ** np.arange(-3, 3.5, 0.5), cv=5,
                                                              max_iter=5000)).fit(xa, ya)
    shown_grid = {**grid, "num_models": "auto (32, 5-fold CV)",
                  "sklearn": f"LogisticRegressionCV, C={cv[-1].C_[0]:.3g}"}
    rows.append(("breast_cancer", shown_grid, "AUC", result["roc_auc_score"],
                 roc_auc_score(yt, cv.predict_proba(xt)[:, 1]), seconds))
    rows.append(("breast_cancer", shown_grid, "F1", result["binary_f_beta"], f1_score(yt, cv.predict(xt)), seconds))
    scaler, logistic = reference[0], reference[-1]
    z = scaler.transform(xa)
    sign = 2 * ya - 1

    def objective(w, b):
        return float(np.mean(np.logaddexp(0, -sign * (z @ w + b))) + np.sum(w ** 2) / (2 * n))

    w = model.weights[:, 0].astype(np.float64) * scaler.scale_  # ours on StandardScaler's features
    b = float(model.bias[0] + model.weights[:, 0].astype(np.float64) @ scaler.mean_)
    ours_objective = objective(w, b)
    reference_objective = objective(logistic.coef_[0], logistic.intercept_[0])
    met = sum(a >= auc_ref - 1e-12 and f >= f1_ref - 1e-12 for a, f, *_ in runs)
    return "\n".join([
        f"DECISIVE breast_cancer (train_test_split(test_size=0.3, random_state=0, stratify=y): {n} training rows, "
        f"{len(xt)} test rows), like for like with LogisticRegression(C=1) converged: {shown}",
        f"  seed 0: AUC {auc:.6f} vs {auc_ref:.6f}, F1 {f1:.4f} vs {f1_ref:.4f}, {epochs} epochs run; training "
        f"objective {ours_objective:.7f} vs LogisticRegression's {reference_objective:.7f}",
        "  seeds: " + ", ".join(f"{s}: AUC {a:.6f} F1 {f:.4f} ({e} epochs)" for s, (a, f, e, *_) in enumerate(runs)),
        f"  {met} of {len(runs)} seeds meet the bar (AUC and F1 at least LogisticRegression's)"])


def with_validation(rows, name, xa, ya, xt, yt, hp):
    """Both sides given the same validation channel: 20% of the training split (stratified). Ours trains on the
    other 80% and selects on it (the guide's way); scikit-learn fits LogisticRegression on the same 80% for
    C in 10^-3..10^3 and keeps the C with the best validation accuracy (what a user with a validation set does)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    xf, xv, yf, yv = train_test_split(xa, ya, test_size=0.2, random_state=0, stratify=ya)
    fits = [make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(xf, yf)
            for c in 10.0 ** np.arange(-3, 4)]
    reference = max(fits, key=lambda f: f.score(xv, yv))
    result, seconds, _ = ours(xf, yf, xt, yt, validation=(xv, yv), **hp)
    hp = {k: v for k, v in hp.items() if k not in ("predictor_type", "num_classes")}
    hp["validation"] = "20% of train, both sides"
    if name == "breast_cancer":
        rows.append((name, hp, "AUC", result["roc_auc_score"], roc_auc_score(yt, reference.predict_proba(xt)[:, 1]),
                     seconds))
        rows.append((name, hp, "F1", result["binary_f_beta"], f1_score(yt, reference.predict(xt)), seconds))
    else:
        rows.append((name, hp, "accuracy", result["multiclass_accuracy"], accuracy_score(yt, reference.predict(xt)),
                     seconds))


def synthetic(rows, dim, seed=0):
    """Binary 1:9 data: 30 informative directions, logistic labels with 5% flips; float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    w = np.zeros(dim, np.float32)
    w[:30] = rng.normal(size=30).astype(np.float32)
    logits = x @ w / np.sqrt(30) * 4
    bias = np.quantile(logits, 0.9)  # about 10% positive
    y = (rng.random(rows, dtype=np.float32) < 1 / (1 + np.exp(-(logits - bias)))).astype(np.float32)
    flips = rng.random(rows) < 0.05
    y[flips] = 1 - y[flips]
    x *= np.linspace(0.5, 3, dim, dtype=np.float32)  # unequal scales
    x += 1.0
    return x, y


def speed(args):
    from sklearn.linear_model import SGDClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import StandardScaler

    x, y = synthetic(args.rows, args.dim)
    cut = int(args.rows * 0.8)
    xa, ya, xt, yt = x[:cut], y[:cut], x[cut:], y[cut:]
    print(f"{cut} training rows x {args.dim} features, {ya.mean():.3f} positive; {args.epochs} epochs everywhere;"
          f" {os.cpu_count()} CPUs (shared); ours and (a) interleaved {args.repeat} times, median ratios")
    s = settings(predictor_type="binary_classifier", num_models=32)
    scaler = StandardScaler().fit(xa[:10000])  # what ours does: a scaler from a sample, then SGD on scaled rows
    start = time.perf_counter()
    xs = scaler.transform(xa).astype(np.float32)
    scale_seconds = time.perf_counter() - start
    xts = scaler.transform(xt).astype(np.float32)

    def sgd(lr, wd, l1):
        penalty = "elasticnet" if l1 > 0 else "l2"
        alpha = wd + l1
        clf = SGDClassifier(loss="log_loss", max_iter=args.epochs, tol=None, penalty=penalty, alpha=alpha,
                            l1_ratio=l1 / alpha if alpha > 0 and l1 > 0 else 0.15, learning_rate="optimal"
                            if lr is None else "constant", eta0=lr or 0.01, random_state=0)
        import warnings

        begin, cpu = time.perf_counter(), time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(xs, ya)
        sgd.cpu = time.process_time() - cpu
        return time.perf_counter() - begin, roc_auc_score(yt, clf.decision_function(xts))

    walls, cpus, before = [], [], []
    for repeat in range(args.repeat):
        if args.before:  # the same training from another tree (say the last commit's), in a fresh process
            seconds_b, cpu_b = ours_in(args.before, args)
            seconds_n, cpu_n = ours_in(REPO, args)
            before.append((seconds_n / seconds_b, cpu_n / cpu_b))
            print(f"run {repeat + 1}: {args.before} {seconds_b:.2f} s (CPU {cpu_b:.2f} s); this tree {seconds_n:.2f} s "
                  f"(CPU {cpu_n:.2f} s), in fresh processes", flush=True)
        result, seconds, model = ours(xa, ya, xt, yt, predictor_type="binary_classifier", epochs=args.epochs,
                                      num_models=32, early_stopping_patience=args.epochs + 1)
        our_cpu = ours.cpu
        single_seconds, single_auc = sgd(None, 1e-4, 0.0)
        walls.append(seconds / single_seconds)
        cpus.append(our_cpu / sgd.cpu)
        print(f"run {repeat + 1}: algobox 32 models {seconds:.2f} s (CPU {our_cpu:.2f} s), test AUC "
              f"{result['roc_auc_score']:.4f}; (a) one SGDClassifier(log_loss, optimal lr, alpha 1e-4) "
              f"{single_seconds:.2f} s (CPU {sgd.cpu:.2f} s), test AUC {single_auc:.4f}; ratio "
              f"{walls[-1]:.2f}x wall, {cpus[-1]:.2f}x CPU", flush=True)
    print(f"selected {model.extra['selected_hyperparameters']}")
    if before:
        print(f"this tree / {args.before}: median {np.median([b[0] for b in before]):.2f}x wall, "
              f"{np.median([b[1] for b in before]):.2f}x CPU over {args.repeat} interleaved runs")
    print(f"ours/(a): median {np.median(walls):.2f}x wall, {np.median(cpus):.2f}x CPU over {args.repeat} interleaved "
          f"runs ((a)'s scaling, {scale_seconds:.2f} s, not counted)")
    if not args.grid_points:
        return
    points = list(zip(s.learning_rates, s.wds, s.l1s))
    measured = points[:: len(points) // args.grid_points][: args.grid_points]
    grid, grid_cpu = [], 0.0
    for lr, wd, l1 in measured:
        grid.append(sgd(lr, wd, l1))
        grid_cpu += sgd.cpu
    grid_cpu *= len(points) / len(measured)
    grid_seconds = sum(t for t, _ in grid) * len(points) / len(measured)
    best_grid_auc = max(a for _, a in grid)
    print(f"(b) 32-point SGDClassifier grid (constant lr = our learning rates, alpha = wd + l1): "
          f"{grid_seconds:.1f} s (measured {len(measured)} points, x{len(points) / len(measured):.0f}), best test AUC "
          f"of the measured points {best_grid_auc:.4f}; speed-up ours (last run) vs (b) = "
          f"{grid_seconds / seconds:.1f}x wall, {grid_cpu / our_cpu:.1f}x CPU")


def ours_in(tree, args):
    """(wall, CPU) seconds of the speed benchmark's 32-model training with ``tree``'s code, in a fresh process."""
    import inspect
    import json

    hp = {"predictor_type": "binary_classifier", "epochs": str(args.epochs), "num_models": "32",
          "early_stopping_patience": str(args.epochs + 1)}
    code = "\n".join([
        "import sys, time", f"sys.path.insert(0, {str(tree)!r})", "import numpy as np",
        inspect.getsource(synthetic),
        "from common.spec import load_spec",
        "from containers.linear_learner.settings import resolve",
        "from containers.linear_learner.trainer import Trainer",
        f"x, y = synthetic({args.rows}, {args.dim})", f"cut = int({args.rows} * 0.8)", "x, y = x[:cut], y[:cut]",
        f"s = resolve(load_spec('linear-learner').hyperparameters.parse({json.dumps(hp)}))",
        "blocks = lambda epoch: ((x[i:i + 8192], y[i:i + 8192], None) for i in range(0, len(x), 8192))",
        "start, cpu = time.perf_counter(), time.process_time()", "Trainer(s).fit(blocks)",
        "print(time.perf_counter() - start, time.process_time() - cpu)"])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(tree)})
    wall, cpu = out.stdout.split()[-2:]
    return float(wall), float(cpu)


def hosts(args):
    """One host against two real processes (each half the rows, ShardedByS3Key), averaging vs all-reduce."""
    import json
    import tempfile

    sys.path.insert(0, str(REPO / "tests"))
    import sdk
    from emulator import Job, free_port

    x, y = synthetic(args.rows, args.dim, seed=1)
    cut = int(args.rows * 0.8)
    hp = {"feature_dim": str(args.dim), "predictor_type": "binary_classifier", "epochs": str(args.epochs),
          "num_models": "32", "early_stopping_patience": str(args.epochs + 1)}
    rio = "application/x-recordio-protobuf"
    test = sdk.dense_recordio(x[cut:], y[cut:])

    def auc(output):
        import re

        return float(re.findall(r"test roc_auc_score <loss>=(\S+)", output)[-1])

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        job = Job(tmp / "one")
        job.add_file("train", "all.pbr", sdk.dense_recordio(x[:cut], y[:cut]))
        job.add_file("test", "test.pbr", test)
        job.write_config(hp, {"train": {"ContentType": rio}, "test": {"ContentType": rio}})
        start = time.perf_counter()
        one = job.train("linear-learner", timeout=3600)
        one_seconds = time.perf_counter() - start
        assert one.returncode == 0, one.output[-2000:]
        print(f"1 host: {one_seconds:.1f} s, test AUC {auc(one.output):.5f}")
        for sync in ("average", "gradients"):
            env = {"ALGOBOX_HOST_ADDRESSES": json.dumps({"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}),
                   "ALGOBOX_DIST_PORT": str(free_port()), "ALGOBOX_LINEAR_LEARNER_SYNC": sync}
            jobs = []
            for index, host in enumerate(("algo-1", "algo-2")):
                job = Job(tmp / f"{sync}-{host}")
                job.add_file("train", f"{host}.pbr", sdk.dense_recordio(x[index:cut:2], y[index:cut:2]))
                job.add_file("test", "test.pbr", test)
                job.write_config(hp, {"train": {"ContentType": rio, "S3DistributionType": "ShardedByS3Key"},
                                      "test": {"ContentType": rio}}, hosts=("algo-1", "algo-2"), current_host=host)
                jobs.append(job)
            start = time.perf_counter()
            processes = [job.start_train("linear-learner", env) for job in jobs]
            results = [job.result(p, timeout=3600) for job, p in zip(jobs, processes)]
            seconds = time.perf_counter() - start
            assert [r.returncode for r in results] == [0, 0], results[0].output[-2000:]
            value = auc(results[0].output)
            print(f"2 hosts, {sync}: {seconds:.1f} s ({seconds / one_seconds:.2f}x one host's time), test AUC "
                  f"{value:.5f} ({100 * (value / auc(one.output) - 1):+.2f}% vs one host)")


def write_recordio(path, rows, dim, chunk=100_000):
    """The synthetic data as a recordIO-protobuf file, written a chunk at a time (bounded memory)."""
    from common import tabular

    with open(path, "wb") as out:
        for start in range(0, rows, chunk):
            x, y = synthetic(min(chunk, rows - start), dim, seed=start + 1)
            out.write(tabular.encode_rows(x, y, "application/x-recordio-protobuf"))


def run_measured(job, env=None):
    """``algobox linear-learner train`` as a subprocess: (seconds, peak RSS bytes, output)."""
    import psutil

    start = time.perf_counter()
    process = job.start_train("linear-learner", env)
    watched, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [watched, *watched.children(recursive=True)]))
        except psutil.Error:
            pass
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    result = job.result(process)
    assert result.returncode == 0, result.output[-3000:]
    return seconds, peak, result.output


def whole(args):
    """The whole ``algobox linear-learner train`` from recordIO, File and Pipe, against (a) (run again before each,
    interleaved); peak RSS by size. CPU: ours is the job process's and its children's (the reader thread's too)."""
    import resource
    import tempfile

    from sklearn.linear_model import SGDClassifier

    sys.path.insert(0, str(REPO / "tests"))
    from emulator import Job

    hp = {"feature_dim": str(args.dim), "predictor_type": "binary_classifier", "epochs": str(args.epochs),
          "num_models": "32", "early_stopping_patience": str(args.epochs + 1)}
    rio = "application/x-recordio-protobuf"
    x, y = synthetic(args.rows, args.dim, seed=1)
    xs = (x - x[:10000].mean(0)) / x[:10000].std(0)
    del x

    def reference():
        """(a), run again before each of ours (interleaved): wall seconds."""
        begin, cpu = time.perf_counter(), time.process_time()
        SGDClassifier(loss="log_loss", max_iter=args.epochs, tol=None, random_state=0).fit(xs, y)
        seconds = time.perf_counter() - begin
        print(f"(a) SGDClassifier on {args.rows} x {args.dim} in memory, {args.epochs} epochs: {seconds:.1f} s "
              f"(CPU {time.process_time() - cpu:.1f} s)", flush=True)
        reference.cpu = time.process_time() - cpu
        return seconds
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        tmp = Path(tmp)
        data = tmp / "train.pbr"
        write_recordio(data, args.rows, args.dim)
        for mode in ("File", "Pipe"):
            job = Job(tmp / mode)
            if mode == "File":
                (job.root / "input/data/train").mkdir(parents=True, exist_ok=True)
                os.link(data, job.root / "input/data/train/part-0.pbr")
            else:
                def chunks():
                    with open(data, "rb") as f:
                        while block := f.read(1 << 20):
                            yield block
                job.add_pipe("train", [chunks() for _ in range(args.epochs)])
            job.write_config(hp, {"train": {"ContentType": rio, "TrainingInputMode": mode}})
            a_seconds = reference()
            children = resource.getrusage(resource.RUSAGE_CHILDREN)
            seconds, peak, _ = run_measured(job, {"ALGOBOX_PIPE_WAIT_SECONDS": "60"})
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
            print(f"algobox linear-learner train, {mode} mode, {args.rows} rows, {args.epochs} epochs, 32 models: "
                  f"{seconds:.1f} s ({seconds / a_seconds:.2f}x (a) wall; CPU {cpu:.1f} s, {cpu / reference.cpu:.2f}x "
                  f"(a)'s), peak RSS {peak / 2**20:.0f} MiB", flush=True)
        data.unlink()
        if args.skip_rss:
            return
        for factor in (1, 4):
            rows = args.rows * factor
            data = tmp / f"rss{factor}.pbr"
            write_recordio(data, rows, args.dim)
            job = Job(tmp / f"rss{factor}")
            (job.root / "input/data/train").mkdir(parents=True, exist_ok=True)
            os.link(data, job.root / "input/data/train/part-0.pbr")
            job.write_config({**hp, "epochs": "1"}, {"train": {"ContentType": rio}})
            seconds, peak, _ = run_measured(job)
            print(f"peak RSS, {rows} rows, 1 epoch, File mode: {peak / 2**20:.0f} MiB ({seconds:.1f} s)")
            data.unlink()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=("quality", "speed", "hosts", "whole"))
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--grid-points", type=int, default=4, help="speed: (b)'s measured points (0: skip (b))")
    parser.add_argument("--before", help="speed: also time the 32-model training with this tree's code (A/B, "
                        "interleaved, fresh processes)")
    parser.add_argument("--skip-rss", action="store_true", help="whole: skip the peak-RSS runs (1x and 4x rows)")
    parser.add_argument("--repeat", type=int, default=3, help="speed: interleaved runs of ours and (a)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    {"quality": quality, "speed": speed, "hosts": hosts, "whole": whole}[args.what](args)


if __name__ == "__main__":
    main()
