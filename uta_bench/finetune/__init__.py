"""ImageNet-style full fine-tuning of registered vision towers (Table 4, FT column); see train.py."""
