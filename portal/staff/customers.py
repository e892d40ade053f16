"""Staff area: customers."""
