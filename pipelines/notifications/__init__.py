"""Outbound notifications (contract section 6): Standard Webhooks to the catalog's channels."""
