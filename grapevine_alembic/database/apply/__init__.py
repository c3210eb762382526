"""Applying one parsed file to one connection: transactions, round trips, errors, durability."""
