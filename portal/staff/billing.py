"""Staff area: billing."""
