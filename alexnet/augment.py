"""Data augmentation of Section 4.1: random crops and flips, PCA colour noise, ten-crop testing.

Krizhevsky et al. 2012, https://papers.nips.cc/paper/4824, Section 4.1. The paper trains on
random 224x224 patches (and their mirror images) of 256x256 images, tests on the mean of the
softmax over ten patches (four corners and the centre, each also flipped), and alters the
intensities of the RGB channels along their principal components ("fancy PCA"):

    I_xy += [p1 p2 p3] [alpha_1 lambda_1, alpha_2 lambda_2, alpha_3 lambda_3]^T,   alpha_i ~ N(0, 0.1)

where p_i, lambda_i are the eigenvectors and eigenvalues of the 3x3 covariance of RGB pixel
values over the training set. One alpha per image per pass, the same for all its pixels.

Tests (tests/test_augment.py): the covariance and the Jacobi eigen-decomposition match
`numpy.cov` / `numpy.linalg.eigh` on data with a known covariance, the perturbations have the
covariance sigma^2 P diag(lambda)^2 P^T (a statistical test, fixed seed), and ten_crop_logits
equals the mean of the ten crops taken by hand.
"""

import math

import torch

# ----------------------------------------------------------------------------- fancy PCA


def rgb_covariance(images):
    """images: (N, C, H, W) in [0, 1] -> (C, C) covariance of pixel colours, unbiased.

    Sigma = X_c^T X_c / (M - 1) over all M = N*H*W pixels, X_c the centred colours.
    """
    x = images.transpose(0, 1).reshape(images.shape[1], -1).double()  # (C, M)
    x = x - x.mean(dim=1, keepdim=True)
    return x @ x.T / (x.shape[1] - 1)  # (C, M) @ (M, C) -> (C, C)


def jacobi_eigh(a, sweeps=50, tol=1e-15):
    """Eigen-decomposition of a small symmetric matrix by Jacobi rotations (ascending order).

    Each rotation G (angle theta in the (p, q) plane) zeroes a[p, q] in G^T A G:
    tan(2 theta) = 2 a_pq / (a_qq - a_pp). The product of the rotations is the eigenvector
    matrix; the diagonal that remains holds the eigenvalues. Returns (values, vectors) like
    numpy.linalg.eigh: a @ vectors[:, i] = values[i] * vectors[:, i].
    """
    a = a.clone().double()
    n = a.shape[0]
    v = torch.eye(n, dtype=torch.float64)
    for _ in range(sweeps):
        off = (a - torch.diag(torch.diag(a))).abs().max().item() if n > 1 else 0.0
        if off <= tol * max(1.0, a.abs().max().item()):
            break
        for p in range(n - 1):
            for q in range(p + 1, n):
                if a[p, q].abs() < 1e-300:
                    continue
                theta = 0.5 * math.atan2(2 * a[p, q].item(), (a[q, q] - a[p, p]).item())
                c, s = math.cos(theta), math.sin(theta)
                g = torch.eye(n, dtype=torch.float64)
                g[p, p], g[q, q], g[p, q], g[q, p] = c, c, s, -s
                a = g.T @ a @ g
                v = v @ g
    values, order = torch.sort(torch.diag(a))
    return values, v[:, order]


def fancy_pca_basis(images):
    """(eigenvalues lambda (C,), eigenvectors P (C, C) as columns) of the training colours."""
    return jacobi_eigh(rgb_covariance(images))


def fancy_pca(x, values, vectors, std=0.1, generator=None):
    """x: (B, C, H, W) in [0, 1]; adds P (alpha * lambda) to every pixel, alpha ~ N(0, std).

    The added colour delta = P (alpha * lambda) has covariance std^2 P diag(lambda)^2 P^T.
    """
    B, C = x.shape[:2]
    alpha = torch.randn(B, C, generator=generator, dtype=torch.float64) * std  # (B, C)
    delta = (alpha * values) @ vectors.T  # (B, C) @ (C, C): row b is P (alpha_b * lambda)
    return x + delta.to(x.dtype).to(x.device)[:, :, None, None]


# ----------------------------------------------------------------------------- crops, flips


def random_crop_flip(x, size, flip=True):
    """x: (B, C, S, S) -> (B, C, size, size): a random size x size patch, mirrored with p = 1/2."""
    B, _, S, _ = x.shape
    offsets = torch.randint(0, S - size + 1, (B, 2))
    out = torch.stack(
        [x[b, :, i : i + size, j : j + size] for b, (i, j) in enumerate(offsets.tolist())]
    )
    if flip:
        mirror = torch.rand(B) < 0.5
        out = torch.where(mirror[:, None, None, None].to(out.device), out.flip(-1), out)
    return out


def center_crop(x, size):
    S = x.shape[-1]
    i = int(round((S - size) / 2))  # torchvision's rounding, for an odd S - size
    return x[..., i : i + size, i : i + size]


def ten_crops(x, size):
    """x: (B, C, S, S) -> list of 10 tensors (B, C, size, size): 4 corners, centre, and mirrors."""
    S = x.shape[-1]
    e = S - size
    crops = [x[..., i : i + size, j : j + size] for i, j in ((0, 0), (0, e), (e, 0), (e, e))]
    crops.append(center_crop(x, size))
    return crops + [c.flip(-1) for c in crops]


def ten_crop_probs(model, x, size):
    """Section 4.1's test: the softmax averaged over the ten patches. -> (B, num_classes)."""
    return torch.stack([model(c).softmax(-1) for c in ten_crops(x, size)]).mean(0)
