"""PCA: a drop-in for the SageMaker built-in ``pca`` image."""
