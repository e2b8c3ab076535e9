"""The command line's side of a `dodas server`: HTTP and tokens."""
