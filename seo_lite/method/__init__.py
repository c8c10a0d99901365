"""The method a learner reads: the algorithm (seo.py) and its pieces."""
