"""FPGA prototyping: board tops, host link and the yowasp synthesis flow."""
