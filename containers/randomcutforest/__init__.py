"""Random Cut Forest: a drop-in for the SageMaker built-in ``randomcutforest`` image."""
