"""Amaranth 0.5 components of the digital periphery of an IMC core, all with stream ports."""
