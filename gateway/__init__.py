"""The gateway: the one door from outside to every service's public methods."""
