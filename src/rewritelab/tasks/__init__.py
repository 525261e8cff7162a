"""Tasks: rules, rule families, inputs, dataset specs, generators, the on-disk dataset format,
inspect."""
