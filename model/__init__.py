"""The AIA network, its data, training and evaluation."""
