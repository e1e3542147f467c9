"""The k-means math in PyTorch: streaming mini-batch updates over K = k x extra_center_factor centers,
then a weighted Lloyd's reduction from K to k. The same code runs on a GPU when one is present.
"""

import math

import torch

ASSIGN_CHUNK_ELEMENTS = 1 << 22  # rows x centers per chunk: bounds the score block (16 MB)


def squared_norms(x):
    return torch.einsum("ij,ij->i", x, x)


def assign(points, centers, center_norms=None, with_distances=True):
    """Index of the nearest center for every row, and (optionally) the squared distance to it."""
    if center_norms is None:
        center_norms = squared_norms(centers)
    centers_t = centers.T.contiguous()
    rows = max(1, ASSIGN_CHUNK_ELEMENTS // max(1, centers.shape[0]))
    labels, distances = [], []
    for start in range(0, points.shape[0], rows):
        chunk = points[start:start + rows]
        # |x|^2 - 2 x.c + |c|^2, with the x term added after the argmin (it does not change it).
        scores = torch.addmm(center_norms, chunk, centers_t, beta=1.0, alpha=-2.0)
        if with_distances:
            best, index = scores.min(dim=1)
            distances.append((best + squared_norms(chunk)).clamp_min_(0.0))
        else:
            index = scores.argmin(dim=1)
        labels.append(index)
    labels = labels[0] if len(labels) == 1 else torch.cat(labels)
    if not with_distances:
        return labels, None
    return labels, distances[0] if len(distances) == 1 else torch.cat(distances)


def kmeans_plus_plus(points, n_centers, generator, weights=None, stop=None):
    """Indices of ``n_centers`` rows picked by k-means++ (D^2 sampling, optionally weighted); after a stop
    request (SIGTERM) the rest are drawn at once by weight alone."""
    n = points.shape[0]
    weights = torch.ones(n, dtype=points.dtype, device=points.device) if weights is None else weights
    chosen = [int(torch.multinomial(weights, 1, generator=generator))]
    closest = ((points - points[chosen[0]]) ** 2).sum(dim=1)
    for done in range(1, n_centers):
        if stop is not None and stop.is_set():
            rest = weights.clone()
            rest[chosen] = 0
            if float(rest.sum()) <= 0 or int((rest > 0).sum()) < n_centers - done:
                rest = torch.ones_like(weights)
            more = torch.multinomial(rest, n_centers - done, replacement=int((rest > 0).sum()) < n_centers - done,
                                     generator=generator)
            chosen.extend(int(i) for i in more)
            break
        probabilities = weights * closest
        if float(probabilities.sum()) <= 0:  # every remaining point sits on a chosen center
            probabilities = weights.clone()
            probabilities[chosen] = 0
            if float(probabilities.sum()) <= 0:
                probabilities = torch.ones_like(weights)
        index = int(torch.multinomial(probabilities, 1, generator=generator))
        chosen.append(index)
        closest = torch.minimum(closest, ((points - points[index]) ** 2).sum(dim=1))
    return torch.tensor(chosen, device=points.device)


def random_rows(n, n_centers, generator, device, weights=None):
    """Indices of ``n_centers`` distinct rows chosen at random (proportional to weight when given)."""
    if weights is None:
        return torch.randperm(n, generator=generator, device="cpu")[:n_centers].to(device)
    positive = int((weights > 0).sum())
    if positive >= n_centers:
        return torch.multinomial(weights, n_centers, replacement=False, generator=generator)
    order = torch.argsort(weights, descending=True)
    return order[:n_centers]


class StreamingKMeans:
    """Mini-batch k-means over ``n_centers`` centers, each moving toward the mean of its new points in
    proportion new / (old + new); counts decay so that a point's weight halves after
    ``half_life_time_size`` further points (0: no decay).
    """

    def __init__(self, n_centers, feature_dim, init_method="random", half_life_time_size=0, device="cpu",
                 seed=0):
        self.n_centers = n_centers
        self.feature_dim = feature_dim
        self.init_method = init_method
        self.half_life = half_life_time_size
        self.device = torch.device(device)
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.centers = None
        self.counts = torch.zeros(n_centers, dtype=torch.float64, device=self.device)
        self.points_seen = 0
        self._pending = []

    @property
    def initialized(self):
        return self.centers is not None

    def _initialize(self, points):
        n = points.shape[0]
        n_centers = min(self.n_centers, n)
        if self.init_method == "kmeans++":
            index = kmeans_plus_plus(points, n_centers, self._device_generator(points))
        else:
            index = random_rows(n, n_centers, self.generator, points.device)
        centers = torch.zeros(self.n_centers, self.feature_dim, dtype=torch.float32, device=self.device)
        centers[:n_centers] = points[index]
        self.centers = centers
        self.active = n_centers

    def _device_generator(self, points):
        if points.device.type == "cpu":
            return self.generator
        seed = int(torch.randint(0, 2**62, (1,), generator=self.generator))
        return torch.Generator(device=points.device).manual_seed(seed)

    def partial_fit(self, points):
        """Update with one mini-batch (a float32 tensor of shape (n, feature_dim) on ``device``)."""
        if not self.initialized:
            self._pending.append(points)
            pending = sum(p.shape[0] for p in self._pending)
            if pending < self.n_centers:
                return self
            points = torch.cat(self._pending)
            self._pending = []
            self._initialize(points)
        self._update(points)
        return self

    def finish(self):
        """Use whatever was buffered when the data held fewer points than centers."""
        if not self.initialized and self._pending:
            points = torch.cat(self._pending)
            self._pending = []
            self._initialize(points)
            self._update(points)
        return self

    def _update(self, points):
        active = self.centers[: self.active]
        labels, _ = assign(points, active, with_distances=False)
        sums = torch.zeros_like(active).index_add_(0, labels, points)
        new = torch.bincount(labels, minlength=self.active).to(torch.float64)
        if self.half_life:
            self.counts.mul_(0.5 ** (points.shape[0] / self.half_life))
        old = self.counts[: self.active]
        total = old + new
        moved = new > 0
        step = (sums.double() - new[:, None] * active.double()) / total.clamp_min(1e-12)[:, None]
        active[moved] += step[moved].float()
        self.counts[: self.active] = total
        self.points_seen += points.shape[0]


def weighted_lloyd(points, weights, k, init_method, max_iter, tol, trials, generator, stop=None):
    """Weighted Lloyd's from ``points`` (K x d, weights = cluster counts) down to k centers.

    Runs ``trials`` times from different initial centers and keeps the lowest weighted loss. Clusters
    that lose every point are moved to the point contributing most to the loss, so no NaN can appear.
    A set ``stop`` event (SIGTERM) ends the iterations: the best centers so far are returned.
    """
    points = points.double()
    weights = weights.double()
    usable = weights > 0
    if int(usable.sum()) >= k:
        points, weights = points[usable], weights[usable]
    n = points.shape[0]
    best_centers, best_loss = None, math.inf
    for _ in range(trials):
        if n <= k:
            centers = torch.cat([points, points[:1].expand(k - n, -1)]) if n < k else points.clone()
        elif init_method == "kmeans++":
            centers = points[kmeans_plus_plus(points, k, generator, weights, stop)].clone()
        else:
            centers = points[random_rows(n, k, generator, points.device, weights)].clone()
        previous = math.inf
        for _ in range(max_iter):
            if stop is not None and stop.is_set():
                break
            labels, distances = assign(points, centers)
            loss = float((weights * distances).sum())
            if math.isfinite(previous) and previous - loss <= tol * previous:
                break
            previous = loss
            mass = torch.zeros(k, dtype=points.dtype, device=points.device).index_add_(0, labels, weights)
            sums = torch.zeros_like(centers).index_add_(0, labels, points * weights[:, None])
            filled = mass > 0
            centers[filled] = sums[filled] / mass[filled][:, None]
            for cluster in torch.nonzero(~filled).flatten().tolist():
                worst = int(torch.argmax(weights * distances))
                centers[cluster] = points[worst]
                distances[worst] = 0
        labels, distances = assign(points, centers)
        loss = float((weights * distances).sum())
        if loss < best_loss:
            best_centers, best_loss = centers.clone(), loss
        if stop is not None and stop.is_set():
            break
    return best_centers.float(), best_loss
