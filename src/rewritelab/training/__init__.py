"""Training: the loop, run directories, and the methods (scratch, finetune, pretrain)."""
