"""What stands in for the outside world, and the demo: a local Stripe, a local ERP (custom
invoicing integration), a booking system that receives notifications, the sample data
generator and the demo run, with their own command (`python -m devkit`, `devkit.cli`).
Outside the wheel: the product package (`pipelines`) never imports it; tests, benchmarks and the
demo do."""
