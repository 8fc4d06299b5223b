"""The invoice ledger in the warehouse: drafts written in place, issued invoices frozen."""
