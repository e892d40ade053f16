"""Staff area: dunning."""
