"""Built-in Esper plugin package."""
