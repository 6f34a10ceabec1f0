"""Layer 7: searches built from data, models, masks, engine, evolution and methods."""
