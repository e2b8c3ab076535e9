"""The command line face of dodas."""
