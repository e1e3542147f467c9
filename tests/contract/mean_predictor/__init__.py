"""A throwaway algorithm written only in tests: it predicts the training labels' (weighted) mean.

It proves the seams: it reads libsvm (common/'s reader, with weights), declares a metric and a cross-field
check, trains, serves, is described and passes the conformance suite, all without a line in common/.
"""
