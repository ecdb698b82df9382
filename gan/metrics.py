"""How good are the samples: mode coverage (2-D), Frechet distance, k-NN precision/recall.

- Mode coverage and high-quality share, the 2-D benchmark of Unrolled GAN (Metz et al. 2016,
  arXiv 1611.02163), VEEGAN (arXiv 1705.07761) and PacGAN (arXiv 1712.04086): a sample is
  high quality if it lies within 3 standard deviations of its nearest mode centre; a mode is
  covered if it receives at least a tenth of its fair share (0.1 n / K) of the high-quality
  samples, so a few stray points do not count as a mode.
- Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017,
  arXiv 1706.08500, eq. 6): ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)). In this
  folder the features are the judge classifier's (judge.py), so it is "judge-FID", not
  Inception FID.
- k-NN precision and recall (Kynkaanniemi et al. 2019, arXiv 1904.06991, eq. 1-3): the real
  manifold is the union of balls around each real feature with radius its k-th nearest real
  neighbour; precision = share of fakes inside it, recall = share of reals inside the fakes'.
- Class histogram of generated images as the judge labels them: classes present, KL to uniform.
NumPy and SciPy only. tests/test_metrics.py holds the Frechet distance against pytorch_fid's
calculate_frechet_distance and precision/recall against the prdc package.
"""

import warnings

import numpy as np
from scipy import linalg


def mode_stats(samples, centers, std):
    """{modes_covered, high_quality, mode_counts} of samples (n, 2) against centres (K, 2)."""
    # squared distances (n, K) from every sample to every centre
    d2 = ((samples[:, None, :] - centers[None, :, :]) ** 2).sum(-1)
    nearest = d2.argmin(1)
    good = np.sqrt(d2.min(1)) <= 3.0 * std
    counts = np.bincount(nearest[good], minlength=len(centers))
    threshold = 0.1 * len(samples) / len(centers)
    return {
        "modes_covered": int((counts >= threshold).sum()),
        "high_quality": float(good.mean()),
        "mode_counts": counts.tolist(),
    }


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); sqrtm's tiny imaginary part dropped."""
    diff = mu1 - mu2
    with warnings.catch_warnings():  # a singular product is handled just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        # singular product: the usual fix, a small ridge on both covariances
        offset = np.eye(len(sigma1)) * 1e-6
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def feature_frechet(a, b):
    """Frechet distance between Gaussians fitted to features a (n, d) and b (m, d)."""
    stats = [
        (f.mean(0), np.cov(f, rowvar=False)) for f in (a.astype(np.float64), b.astype(np.float64))
    ]
    return frechet_distance(*stats[0], *stats[1])


def _pairwise(a, b):
    """Euclidean distances (n, m), from ||a||^2 + ||b||^2 - 2 a.b, clipped at 0."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2, 0.0))


def knn_radii(feats, k):
    """Distance from each point to its k-th nearest neighbour in the same set (itself excluded)."""
    d = _pairwise(feats, feats)
    # column 0 of the sorted row is the point itself (distance 0)
    return np.sort(d, axis=1)[:, k]


def precision_recall(real, fake, k=3):
    """Kynkaanniemi et al. 2019: precision = mean_f [exists r: ||f - r|| <= R_k(r)], recall the mirror."""
    real, fake = real.astype(np.float64), fake.astype(np.float64)
    d = _pairwise(real, fake)  # (n_real, n_fake)
    precision = (d <= knn_radii(real, k)[:, None]).any(0).mean()
    recall = (d <= knn_radii(fake, k)[None, :]).any(1).mean()
    return float(precision), float(recall)


def class_histogram(labels, n_classes, min_share=0.01):
    """{classes_present, kl_to_uniform, histogram}: a class is present with >= 1% of the samples."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    p = counts / counts.sum()
    # KL(p || U) = sum_c p_c log(p_c K); empty classes contribute 0
    nz = p > 0
    return {
        "classes_present": int((p >= min_share).sum()),
        "kl_to_uniform": float((p[nz] * np.log(p[nz] * n_classes)).sum()),
        "histogram": counts.astype(int).tolist(),
    }
