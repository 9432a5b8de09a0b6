"""MLflow: the store, what a training run logs, promotion by aliases, and loading a registered model."""
