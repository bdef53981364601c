"""Usage: records in from network mediation, counted once each, folded into monthly profiles per line.
Kept separable (it imports from the other parts only the line lookup) so it can become its own service."""
