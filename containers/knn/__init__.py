"""k-NN: a drop-in for the SageMaker built-in ``knn`` image (faiss indexes).

faiss parallelises with OpenMP. Its default spin-waiting made small index builds 10-20x slower whenever
another process shared the cores (measured: IVFPQ over 700 digits, 5.7 s against 0.27 s), so idle OpenMP
threads sleep unless the environment says otherwise. This must happen before faiss loads the OpenMP runtime.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
