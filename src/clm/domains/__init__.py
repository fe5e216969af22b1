"""Domains: the data, environments, validity checks and pictures the CLM
trains on. They know nothing of training (they import only clm.core)."""
