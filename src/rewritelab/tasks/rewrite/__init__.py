"""The single-rule rewrite task of the paper: apply `x -> y` to the leftmost `x` of `z`."""
