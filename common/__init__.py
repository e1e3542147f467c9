"""algobox shared runtime: the SageMaker container contract, knowing nothing about any algorithm."""
