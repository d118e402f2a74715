"""Features and UMAP embeddings (fitted on MNIST, other sets transformed into it), cached on disk."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from mnist_gen.errors import UserError
from mnist_gen.io import write_atomic
from mnist_gen.reporting.eda.constants import SIZE

log = logging.getLogger(__name__)

def pixel_features(images: np.ndarray) -> np.ndarray:
    """(N, 784) float32 in [0, 1]."""
    return np.asarray(images, dtype=np.float32).reshape(len(images), -1) / 255.0


def penultimate_features(predictor, images: np.ndarray, batch: int = 2048) -> np.ndarray:
    """Activations entering the network's last layer (its Dense(10)), flattened, (N, D) float32.

    Inputs are normalised exactly as the predictor does for classification.
    """
    import torch

    net = getattr(predictor, "net", None)
    if not isinstance(net, torch.nn.Sequential):
        raise UserError(f"Model {getattr(predictor, 'name', predictor)} has no layer stack to read penultimate "
                        "features from; give model_path a network run directory or model.ckpt.")
    body = net[:-1]
    out = []
    with torch.inference_mode():
        for s in range(0, len(images), batch):
            x = torch.from_numpy(np.asarray(images[s : s + batch], dtype=np.float32).reshape(-1, 1, SIZE, SIZE))
            x = (x / 255.0 - predictor.mean) / predictor.std
            out.append(body(x.to(predictor.device)).flatten(1).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def reduce_dims(train: np.ndarray, others: Mapping[str, np.ndarray], dims: int | None,
                seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """PCA fitted on ``train`` (MNIST) to ``dims`` components, applied to every set; unchanged
    when ``dims`` is None or not below the feature count. Neighbour search on a CNN's
    thousands of penultimate features costs far more than on 50 components, and UMAP's
    neighbourhoods barely change."""
    if dims is None or train.shape[1] <= int(dims):
        return train, dict(others)
    from sklearn.decomposition import PCA

    pca = PCA(n_components=int(dims), svd_solver="randomized", random_state=seed).fit(train)
    return (pca.transform(train).astype(np.float32),
            {n: pca.transform(x).astype(np.float32) if len(x) else np.zeros((0, int(dims)), np.float32)
             for n, x in others.items()})


def _knn_csr(nn, queries: np.ndarray, k: int, n_train: int, drop_self: bool = False):
    import scipy.sparse as sp

    dist, idx = nn.kneighbors(queries, k)
    n = len(queries)
    g = sp.csr_matrix((dist.ravel().astype(np.float32), idx.ravel(), np.arange(0, n * k + 1, k)), shape=(n, n_train))
    if drop_self:
        g = g.tolil()
        g.setdiag(0)
        g = g.tocsr()
        g.eliminate_zeros()
        g = g.maximum(g.T).tocsr()  # umap wants a symmetric matrix of training distances
    return g


def umap_embed(train: np.ndarray, others: Mapping[str, np.ndarray], n_components: int = 2, n_neighbors: int = 15,
               min_dist: float = 0.1, n_epochs: int | None = None, seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Fit UMAP on ``train`` (MNIST) and ``transform`` every array of ``others`` into that embedding.

    Neighbours are found exactly (scikit-learn, brute force on BLAS) and handed to UMAP as a
    sparse precomputed distance graph. Same graph UMAP would build itself, but without
    pynndescent, whose just-in-time compilation alone takes over a minute on 2 cores.
    """
    import warnings

    import umap
    from sklearn.neighbors import NearestNeighbors

    train = np.asarray(train, dtype=np.float32)
    k = int(min(n_neighbors, len(train) - 1))
    if k < 2:
        raise UserError(f"UMAP needs more than {k + 1} MNIST points; raise n_mnist.")
    nn = NearestNeighbors(algorithm="brute").fit(train)
    graph = _knn_csr(nn, train, k + 1, len(train), drop_self=True)
    model = umap.UMAP(n_components=n_components, n_neighbors=k, min_dist=min_dist, n_epochs=n_epochs,
                      metric="precomputed", random_state=seed, transform_seed=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*(precomputed|n_jobs|random_state|disconnected).*")
        emb = model.fit_transform(graph)
        out = {}
        for name, x in others.items():
            x = np.asarray(x, dtype=np.float32)
            out[name] = (model.transform(_knn_csr(nn, x, k, len(train))).astype(np.float32) if len(x)
                         else np.zeros((0, n_components), np.float32))
    return emb.astype(np.float32), out


def cache_key(train: np.ndarray, others: Mapping[str, np.ndarray], params: Mapping) -> str:
    """Hash of every input array and every setting that changes an embedding."""
    import umap

    h = hashlib.sha256()
    h.update(json.dumps({**params, "umap": getattr(umap, "__version__", "?")}, sort_keys=True, default=str).encode())
    for name, arr in [("__train__", train), *sorted(others.items())]:
        a = np.ascontiguousarray(arr, dtype=np.float32)
        h.update(name.encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()[:20]


def cached_umap(cache_dir: Path | None, tag: str, train: np.ndarray, others: Mapping[str, np.ndarray],
                **params) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
    """``umap_embed`` through ``<cache_dir>/umap_<tag>_<hash>.npz``; returns (train, others, from_cache)."""
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"umap_{tag}_{cache_key(train, others, params)}.npz"
        if path.is_file():
            try:
                with np.load(path) as z:
                    return z["__train__"], {n: z[f"set__{n}"] for n in others}, True
            except (OSError, KeyError, ValueError) as e:
                log.warning("ignoring unreadable cache file %s (%s)", path, e)
    emb, out = umap_embed(train, others, **params)
    if path is not None:
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, __train__=emb, **{f"set__{n}": v for n, v in out.items()})
        write_atomic(path, buf.getvalue())
    return emb, out, False
