"""The text domain: words (corpus, character models, metrics, constraints, the edit environment)."""
