"""Developer tooling: code generation, the local launcher, demo data and the command-line client."""
