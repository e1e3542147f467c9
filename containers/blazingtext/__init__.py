"""BlazingText: a drop-in for the SageMaker built-in ``blazingtext`` image (Word2Vec and text classification)."""
