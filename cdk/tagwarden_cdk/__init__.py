"""The Tagwarden CDK app: one stack per environment (``Tagwarden-<environment>``)."""
