"""What runs the method: wiring, data, run directories, parameters, the dry run."""
