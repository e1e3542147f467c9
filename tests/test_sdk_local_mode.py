"""The SageMaker SDK writes the job: its KMeans estimator's hyperparameters and its local mode's config files."""

import io
import numpy as np
from sklearn.datasets import make_blobs

import sdk
from common import ndarray
from emulator import Job


def sdk_kmeans_hyperparameters(**kwargs):
    from sagemaker import KMeans

    return sdk.estimator_hyperparameters(KMeans, 5, 200, **kwargs)


def sdk_write_config(root, hyperparameters, channels):
    from sagemaker.local.image import _SageMakerContainer

    container = object.__new__(_SageMakerContainer)
    container.container_root = str(root)
    container.hosts = ["algo-1"]
    container.instance_type = "local"
    container.write_config_files("algo-1", hyperparameters, channels)


def test_sdk_estimator_and_local_mode_config_train_a_model(tmp_path):
    hyperparameters = sdk_kmeans_hyperparameters(k=3, init_method="kmeans++", max_iterations=50, tol=0.001,
                                                 num_trials=2, local_init_method="random", center_factor=5,
                                                 eval_metrics=["msd", "ssd"], epochs=2, half_life_time_size=100)
    assert hyperparameters["force_dense"] == "True"
    assert hyperparameters["extra_center_factor"] == "5" and hyperparameters["local_lloyd_max_iter"] == "50"
    job = Job(tmp_path / "algo-1")
    sdk_write_config(tmp_path, hyperparameters, [{"ChannelName": "train", "ContentType": "text/csv"},
                                                 {"ChannelName": "test", "ContentType": "text/csv"}])
    points, _ = make_blobs(600, 5, centers=3, cluster_std=0.2, random_state=4)
    buffer = io.StringIO()
    np.savetxt(buffer, points, delimiter=",")
    job.add_file("train", "train.csv", buffer.getvalue().encode())
    job.add_file("test", "test.csv", buffer.getvalue().encode())
    result = job.train("kmeans")
    assert result.returncode == 0, result.output
    assert '"extra_center_factor": 5' in result.output and '"eval_metrics": ["msd", "ssd"]' in result.output
    assert "#quality_metric: host=algo-1, test ssd <loss>=" in result.output
    assert ndarray.load(result.model_dir / "model_algo-1")[0].shape == (3, 5)
