"""Staff area: agreements."""
