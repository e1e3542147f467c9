"""DeepAR forecasting, declared: channels, readers, codecs, metrics. The math is in network.py / likelihoods.py."""

from common import contenttypes as ct
from common.channels import ChannelSpec
from common.spec import AlgorithmSpec, Metric

PARQUET = "application/x-parquet"
SERIES_TYPES = (ct.JSONLINES, ct.JSON, PARQUET)
QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _channel(name, required, description):
    return ChannelSpec(name, SERIES_TYPES, required=required, input_modes=("File",), description=description)


SPEC = AlgorithmSpec(
    name="deepar",
    description="DeepAR forecasting (an autoregressive LSTM with the guide's lags, date features, categorical "
                "embeddings and five likelihoods; all series of a request sampled as one batch), the SageMaker "
                "built-in's contract",
    channels=(_channel("train", True, "time series (JSON Lines, .json.gz or Parquet) to train on"),
              _channel("test", False, "time series whose last prediction_length points are forecast and scored")),
    train_entry="containers.deepar.train:train",
    model_class="containers.deepar.model:DeepARModel",
    checks="containers.deepar.checks:check",
    readers=("containers.deepar.readers:JSONLinesSeriesReader", "containers.deepar.readers:JSONSeriesReader",
             "containers.deepar.readers:ParquetSeriesReader"),
    codecs=("containers.deepar.codecs:DeepARJSONCodec", "containers.deepar.codecs:DeepARJSONLinesCodec"),
    request_types=(ct.JSON, ct.JSONLINES),
    response_types=(ct.JSON, ct.JSONLINES),
    response_key="predictions",
    metrics=(Metric.quality("test", "RMSE"), Metric.quality("test", "mean_wQuantileLoss"),
             *(Metric.quality("test", f"wQuantileLoss[{q:g}]") for q in QUANTILES),
             Metric.quality("train", "final_loss")),
    tuning_objective="test:mean_wQuantileLoss",
)
