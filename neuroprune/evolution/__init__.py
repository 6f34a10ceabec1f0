"""Layer 5: DEAP glue: genomes, sparsity-preserving operators."""
