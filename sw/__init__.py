"""The software stack: network IR and loaders, quantization, the bit-exact golden model, the mapper
and the performance model. Pure Python and NumPy; nothing here imports Amaranth."""
