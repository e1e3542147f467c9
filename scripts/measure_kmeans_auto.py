"""How k-means' ``auto`` values were chosen: test msd relative to scikit-learn KMeans(n_init=10) on digits
and the clustering core's time on synthetic blobs, for several extra_center_factor and local_lloyd_num_trials.

    .venv/bin/python scripts/measure_kmeans_auto.py
"""

import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from containers.kmeans.kmeans import StreamingKMeans, assign, weighted_lloyd


def fit(points, k, factor, trials, batch=5000, seed=17):
    model = StreamingKMeans(k * factor, points.shape[1], "random", 0, "cpu", seed=seed)
    tensor = torch.from_numpy(points)
    for i in range(0, len(points), batch):
        model.partial_fit(tensor[i:i + batch])
    model.finish()
    centers, _ = weighted_lloyd(model.centers, model.counts, k, "kmeans++", 300, 1e-4, trials,
                                torch.Generator().manual_seed(seed))
    return centers


def msd(points, centers):
    return float(assign(torch.from_numpy(points), centers.float())[1].double().mean())


def main():
    data = load_digits().data.astype(np.float32)
    train, test = train_test_split(data, test_size=0.25, random_state=0)
    reference = msd(test, torch.from_numpy(KMeans(10, n_init=10, random_state=0).fit(train).cluster_centers_))
    print("digits, k=10, batch 5000: test msd / sklearn KMeans(n_init=10), mean of 5 seeds")
    print("factor " + "".join(f"{f'trials={t}':>11}" for t in (1, 3, 10)))
    for factor in (1, 2, 4, 10, 40):
        row = [np.mean([msd(test, fit(train, 10, factor, t, seed=s)) / reference for s in range(5)])
               for t in (1, 3, 10)]
        print(f"{factor:>6} " + "".join(f"{v:>11.4f}" for v in row))
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4, size=(100, 100)).astype(np.float32)
    points = centers[rng.integers(0, 100, 200_000)] + rng.normal(size=(200_000, 100)).astype(np.float32)
    print("\nblobs 200000 x 100, k=100, batch 5000, one pass: seconds and msd")
    for factor in (1, 2, 4, 8):
        start = time.perf_counter()
        found = fit(points, 100, factor, 10)
        print(f"factor {factor}: {time.perf_counter() - start:.2f} s, msd {msd(points, found):.4f}")


if __name__ == "__main__":
    main()
