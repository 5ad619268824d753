"""Reference baselines that every model must beat."""
