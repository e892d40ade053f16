"""Staff area: requests."""
