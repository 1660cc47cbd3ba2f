"""BCa bounds from a bootstrap distribution and a jackknife, as scipy computes them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

BCA_UNDEFINED = "The BCa confidence interval cannot be calculated"  # scipy's words


def bca_bounds(
    distribution: np.ndarray, estimate: float, jackknife: np.ndarray, level: float
) -> tuple[float, float]:
    """Two-sided BCa bounds at ``level``, as ``scipy.stats.bootstrap(method="BCa")`` computes
    them (Efron and Tibshirani 1993, 14.3 and 15.4; scipy's ``_bca_interval``, step for step),
    from the bootstrap ``distribution``, the ``estimate`` on the bootstrapped rows and the
    ``jackknife`` values (the statistic without each row). NaN bounds where scipy's are NaN (it
    then warns that "the BCa confidence interval cannot be calculated"): a degenerate
    distribution, or resamples on which the statistic is undefined.
    """
    import numpy as np
    from scipy.special import ndtr, ndtri
    from scipy.stats import quantile

    with np.errstate(all="ignore"):
        theta_hat = np.asarray([estimate], dtype=np.float64)
        b = distribution.shape[-1]
        below = np.count_nonzero(distribution < theta_hat, axis=-1) + np.count_nonzero(
            distribution <= theta_hat, axis=-1
        )
        z0_hat = ndtri(np.asarray(np.float64(below) / (2 * b), dtype=np.float64))
        n = float(jackknife.shape[-1])
        u = (n - 1) * (np.mean(jackknife, axis=-1, keepdims=True) - jackknife)
        a_hat = 1 / 6 * (np.sum(u**3, axis=-1) / n**3) / (np.sum(u**2, axis=-1) / n**2) ** 1.5
        z_alpha = float(ndtri((1 - level) / 2))
        num1 = z0_hat + z_alpha
        num2 = z0_hat - z_alpha
        alpha_1 = ndtr(z0_hat + num1 / (1 - a_hat * num1))
        alpha_2 = ndtr(z0_hat + num2 / (1 - a_hat * num2))
        ci = quantile(distribution, np.stack((alpha_1, alpha_2), axis=-1), axis=-1)
    return float(ci[..., 0]), float(ci[..., 1])
