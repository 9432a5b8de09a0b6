"""Reading leads from their sources, checking them at the boundary, and finding personal data."""
