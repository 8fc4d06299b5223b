"""Reconciliation and health: the ledger against the providers, usage against invoices, and the
pipeline's own health, as tables finance can query and alerts that open and close."""
