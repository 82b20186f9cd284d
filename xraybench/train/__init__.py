"""Training one case: the engine, its optimisers, objectives, precision, speed-ups and memory meter, and the
worker that every executor calls."""
