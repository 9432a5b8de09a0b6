"""What a training run measures and shows: metrics, plots, global explanations and the model card."""
