"""Staff area: payments."""
