"""k-means: a drop-in for the SageMaker built-in ``kmeans`` image."""
