"""DeepAR forecasting: a drop-in for the SageMaker built-in ``forecasting-deepar`` image."""
