"""The algorithm task (beyond the paper): run an ordered list of rewrite rules until it halts."""
