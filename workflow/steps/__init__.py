"""One module per workflow step: the logic behind each Lambda handler in ``lambdas/``."""
