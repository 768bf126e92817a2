"""Executors and the resolver that drives them."""
