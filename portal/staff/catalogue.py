"""Staff area: catalogue."""
