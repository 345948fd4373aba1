"""The frequency prior: rank every eval image's categories by training frequency.

It is the floor every model must beat: on FathomNet it already scores well on MAP@20
because one category is in 44% of training images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fathom.data.coco import label_matrix


def category_frequency(train: pd.DataFrame, category_ids) -> np.ndarray:
    """Share of training images that hold each category (columns follow `category_ids`)."""
    return label_matrix(train["categories"], category_ids).mean(axis=0)


def prior_probabilities(train: pd.DataFrame, n_images: int, category_ids) -> np.ndarray:
    """The same frequency row for every image, as a probability matrix."""
    return np.tile(category_frequency(train, category_ids), (n_images, 1))
