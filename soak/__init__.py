"""The soak run (`make soak`): soak/run.py drives it, soak/loader.py holds the clients."""
