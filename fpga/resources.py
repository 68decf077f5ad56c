"""How an accelerator is laid out on a board's resources: multipliers, and the estimate.

The behavioural crossbar (`imcflow.hw.crossbar.CrossbarTile`) forms, every cycle, the products of
the ``rows`` inputs of a tile with the weights of ``p = col_parallelism`` columns: ``rows * p``
multiplications of an activation (``act_bits + 1`` bits, signed) by a weight (``weight_bits``
bits). The weights come from a small ROM addressed by the column group, so they are variables to
synthesis, and Yosys maps each product onto an 18x18 DSP multiplier by default: the digits
network at ``p = 4`` has 1,828 of them, the LFE5U-85F 156. Requantization multiplies (an
accumulator by a 16-bit constant, one per output channel; joins and pools) are wide and few: they
belong in the DSPs.

`multiplier_plan` decides: when the crossbar products do not all fit into the board's DSPs, every
multiplication of two operands of at most ``SMALL_BITS`` bits is turned into LUT logic (Yosys'
``booth`` pass, before ``synth_ecp5``/``synth_ice40``) and only the wide ones use DSPs. The build
report records the decision (``multipliers``).
"""

from __future__ import annotations

from imcflow.sw.golden import tile_slices

__all__ = ["SMALL_BITS", "crossbar_products", "multiplier_plan"]

#: operands of at most this many bits are multiplied in LUTs when the DSPs run out
#: (activations are at most 8 bits, 9 signed; weights at most 8)
SMALL_BITS = 9


def crossbar_products(qnet) -> int:
    """Multiplications the crossbar tiles of ``qnet`` perform per cycle: the sum over every
    tile of ``rows * min(col_parallelism, cols)``; 0 for ``bit_serial`` input, whose products
    with one bit plane are AND gates."""
    arch = qnet.arch
    if arch.input_encoding == "bit_serial":
        return 0
    total = 0
    for q in qnet.crossbar_layers:
        for rows in tile_slices(q.rows, arch.rows):
            for cols in tile_slices(q.cols, arch.cols):
                width = cols.stop - cols.start
                total += (rows.stop - rows.start) * min(arch.col_parallelism or width, width)
    return total


def multiplier_plan(qnet, board) -> dict:
    """Where the multiplications go on ``board``.

    Returns
    -------
    dict
        ``crossbar_products``, ``dsps`` (available), ``small_in_luts`` (whether operands of at
        most `SMALL_BITS` bits are multiplied in LUTs) and ``yosys`` (the commands to run after
        reading the design, or "").
    """
    products = crossbar_products(qnet)
    in_luts = products > board.dsps
    select = f"t:$mul r:A_WIDTH<={SMALL_BITS} %i r:B_WIDTH<={SMALL_BITS} %i"
    return {"crossbar_products": products, "dsps": board.dsps, "small_in_luts": in_luts,
            "yosys": f"proc; booth {select}" if in_luts else ""}
