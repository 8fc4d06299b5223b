"""Payment/invoicing provider integrations and their local test doubles."""
