"""Notification stage: invoice events signed and delivered to the catalog's channels."""
