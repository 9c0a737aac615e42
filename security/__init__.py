"""``make security``: checkov on every manifest the project ships or writes, checkov on the Terraform,
bandit on the Python packages; a finding fails unless ``security/skips.yaml`` lists it with a reason."""
