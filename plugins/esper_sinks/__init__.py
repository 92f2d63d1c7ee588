"""Built-in Esper plugin package: observer sinks (TensorBoard, Weights & Biases), off unless switched on."""
