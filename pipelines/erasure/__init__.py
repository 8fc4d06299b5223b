"""Erasure on request (GDPR art. 17, contract section 11): a customer's personal data replaced
by a pseudonym everywhere the pipeline holds it, amounts and documents kept."""
