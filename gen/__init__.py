"""Generators: elaborate components into Verilog, manifests and weight images."""
