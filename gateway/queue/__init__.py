"""Getting work to the delivery code: arq on Redis, or in-process in embedded mode."""
