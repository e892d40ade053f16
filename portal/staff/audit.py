"""Staff area: audit."""
