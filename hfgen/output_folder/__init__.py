"""The output folder of a trained model: the contract every family keeps (see ARCHITECTURE.md)."""
