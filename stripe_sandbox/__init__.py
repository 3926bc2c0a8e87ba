"""A local stand-in for the Stripe API (its wire format, objects, errors and hosted checkout page) for development
and tests; run it with `python -m stripe_sandbox` or in-process with `stripe_sandbox.server.SandboxServer`."""
