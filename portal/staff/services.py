"""Staff area: services."""
