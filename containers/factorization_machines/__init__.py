"""Factorization Machines (factorization-machines): sparse pairwise-interaction models in PyTorch."""
