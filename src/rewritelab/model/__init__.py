"""Models: the tokenizer, the GPT, tokenised splits, prompt templates, pretrained bases and
adapters."""
