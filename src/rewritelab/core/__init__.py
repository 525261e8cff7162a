"""The ground floor: errors, config reading, seeds, provenance, hardware, atomic files, locks,
the paper's numbers."""
