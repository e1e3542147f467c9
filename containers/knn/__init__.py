"""k-NN: a drop-in for the SageMaker built-in ``knn`` image (faiss indexes)."""
