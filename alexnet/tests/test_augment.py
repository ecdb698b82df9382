"""augment.py: the colour covariance and its Jacobi eigen-decomposition against numpy, the PCA
colour noise's covariance (statistical, fixed seed), crops against torchvision's ten_crop, the
ten-crop prediction against the mean of ten softmaxes by hand, and top-k against sklearn."""

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from augment import (
    center_crop,
    fancy_pca,
    fancy_pca_basis,
    jacobi_eigh,
    random_crop_flip,
    rgb_covariance,
    ten_crop_probs,
    ten_crops,
)
from sklearn.metrics import top_k_accuracy_score
from train import topk_correct

SIGMA = np.array([[0.040, 0.030, 0.010], [0.030, 0.050, 0.020], [0.010, 0.020, 0.030]])


def images_with_covariance(sigma, n=200, side=16, seed=0):
    """(n, 3, side, side) pixels whose colours are N(0.5, sigma): x = 0.5 + L z, L L^T = sigma."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, side, side, 3))
    x = 0.5 + z @ np.linalg.cholesky(sigma).T  # (n, s, s, 3) @ (3, 3)
    return torch.from_numpy(x).permute(0, 3, 1, 2)


def test_covariance_matches_numpy_and_the_truth():
    x = images_with_covariance(SIGMA)
    ours = rgb_covariance(x).numpy()
    pixels = x.permute(1, 0, 2, 3).reshape(3, -1).numpy()  # (3, M)
    np.testing.assert_allclose(ours, np.cov(pixels), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours, SIGMA, atol=0.002)  # 51,200 pixels: sampling error ~1e-4


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jacobi_eigh_matches_numpy(seed):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((3, 3))
    a = a @ a.T + 0.1 * np.eye(3)
    values, vectors = jacobi_eigh(torch.from_numpy(a))
    ref_values, ref_vectors = np.linalg.eigh(a)
    np.testing.assert_allclose(values.numpy(), ref_values, rtol=1e-12)
    signs = np.sign(np.sum(vectors.numpy() * ref_vectors, axis=0))  # an eigenvector's sign is free
    np.testing.assert_allclose(vectors.numpy() * signs, ref_vectors, atol=1e-12)
    np.testing.assert_allclose(vectors.numpy().T @ vectors.numpy(), np.eye(3), atol=1e-12)


def test_fancy_pca_basis_of_known_colours():
    values, vectors = fancy_pca_basis(images_with_covariance(SIGMA))
    ref_values, ref_vectors = np.linalg.eigh(SIGMA)
    np.testing.assert_allclose(values.numpy(), ref_values, rtol=0.05)
    assert np.abs(np.sum(vectors.numpy() * ref_vectors, axis=0)).min() > 0.99  # same directions


def test_fancy_pca_noise_has_the_stated_covariance():
    """delta = P (alpha * lambda), alpha ~ N(0, std^2 I): Cov(delta) = std^2 P diag(lambda)^2 P^T."""
    values, vectors = jacobi_eigh(torch.from_numpy(SIGMA))
    std, n = 0.1, 40_000
    gen = torch.Generator().manual_seed(0)
    x = torch.zeros(n, 3, 2, 2, dtype=torch.float64)
    out = fancy_pca(x, values, vectors, std=std, generator=gen)
    assert torch.equal(out[:, :, 0, 0], out[:, :, 1, 1])  # one colour shift for a whole image
    delta = out[:, :, 0, 0].numpy()  # (n, 3)
    expected = std**2 * vectors.numpy() @ np.diag(values.numpy() ** 2) @ vectors.numpy().T
    # n = 40,000 draws: each entry's relative standard error is about sqrt(2 / n) = 0.7%
    np.testing.assert_allclose(np.cov(delta.T), expected, atol=0.04 * np.abs(expected).max())
    np.testing.assert_allclose(delta.mean(0), 0, atol=4 * np.sqrt(expected.max() / n))


def test_crops_match_torchvision_and_flip_is_a_mirror():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 10, 10)
    ours, ref = ten_crops(x, 6), TF.ten_crop(x, [6, 6])
    # torchvision crops the mirrored image: its mirrored top-left is our mirrored top-right
    for i, j in enumerate([0, 1, 2, 3, 4, 6, 5, 8, 7, 9]):
        assert torch.equal(ours[j], ref[i]), f"crop {j}"
    assert torch.equal(center_crop(x, 5), TF.center_crop(x, [5, 5]))  # odd margin: rounded
    crops = random_crop_flip(x, 10)  # no room to move: each output is the image or its mirror
    for b in range(2):
        assert torch.equal(crops[b], x[b]) or torch.equal(crops[b], x[b].flip(-1))


def test_ten_crop_is_the_mean_of_ten_softmaxes():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 5)).double()
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    by_hand = []
    for i, j in [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]:
        patch = x[:, :, i : i + 4, j : j + 4]
        by_hand += [model(patch).softmax(-1), model(patch.flip(-1)).softmax(-1)]
    torch.testing.assert_close(
        ten_crop_probs(model, x, 4), sum(by_hand) / 10, rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_matches_torch_and_sklearn(k):
    torch.manual_seed(k)
    logits, y = torch.randn(200, 7), torch.randint(0, 7, (200,))
    ref_torch = (torch.topk(logits, k).indices == y[:, None]).any(1).sum().item()
    ref_sk = top_k_accuracy_score(y.numpy(), logits.numpy(), k=k, labels=range(7), normalize=False)
    assert topk_correct(logits, y, k) == ref_torch == int(ref_sk)
