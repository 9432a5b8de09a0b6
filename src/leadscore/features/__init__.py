"""Point-in-time features from event logs."""
