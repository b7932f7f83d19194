"""Deployment engines beyond compose."""
