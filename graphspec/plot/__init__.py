"""Plotting: learning curves from training histories (and, later, architecture drawings)."""
