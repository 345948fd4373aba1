"""fathom: a Kaggle image-classification kit, from raw competition files to a submission."""

__version__ = "0.1.0"
