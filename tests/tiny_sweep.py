"""The tiny experiment file the sweep tests share: two instruction counts, two seeds, seconds."""

TINY = """
name = "tiny"
title = "tiny sweep"
kind = "generic"
seeds = 2

[dataset]
alphabet = "abcd"
seen_test_examples = 40
[dataset.train]
examples = 200
input_length = [1, 6]
pattern_length = [1, 2]
replacement_length = [1, 2]
[dataset.test]
instructions = 5
examples_per_instruction = 4

[train]
epochs = 1
batch_size = 32
eval_examples = 0
device = "cpu"
[train.model]
layers = 1
heads = 1
width = 16
context = 24

[grid]
"dataset.train.instructions" = [2, 8]

[presets.small]
seeds = [5]
[presets.small.grid]
"dataset.train.instructions" = [3]
"""
