"""Runtime: where things live (paths), where and how numbers are computed (device, precision, pinned
numerics, data-parallel processes), the result store, and quiet library logging."""
