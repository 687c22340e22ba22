"""The IAM check: the synthesized templates' policies against the AWS calls the workflow makes."""
