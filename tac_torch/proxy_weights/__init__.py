"""The proxy scorers' weight files (float16 safetensors), written by ``tac scorers train-proxy``."""
