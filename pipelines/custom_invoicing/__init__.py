"""The custom invoicing app: draft and issuing sync hooks answered through the integration API."""
