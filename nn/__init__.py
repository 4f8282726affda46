"""nn: neurons, layers and MLPs built on autodiff.Value."""
