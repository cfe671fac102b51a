"""``xstilts plan``: what a cell, a phase or a whole sweep costs on a TPU slice, by compiling
the training program ahead of time for the slice's devices (no weights, no data, no chips)."""
