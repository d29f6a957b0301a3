"""Contracts and their negotiated rates."""
