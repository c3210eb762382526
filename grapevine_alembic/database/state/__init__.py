"""What a database holds and what is pending: the tool's tables, the plan, the values at the layer's edge."""
