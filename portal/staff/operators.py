"""Staff area: operators."""
