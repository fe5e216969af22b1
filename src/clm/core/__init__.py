"""Core services: config, run directory, logging, checkpoints, seeding, devices."""
