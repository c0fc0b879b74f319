"""jaxlearn: deep learning with few data and explainability, as pure JAX functions."""
