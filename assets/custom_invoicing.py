"""Sync stage: the custom invoicing hooks and the integration API's inbox."""
