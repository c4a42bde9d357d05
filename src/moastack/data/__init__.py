"""Raw lish-moa tables: the synthetic generator, validation and the prepare step."""
